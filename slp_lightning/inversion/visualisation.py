"""What a feature visualisation is besides its objective: its rows (one per objective and seed),
the checks it needs before any step, and how its activations compare with natural photographs'.
Plain PyTorch: ``FeatureInversion`` asks it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from slp_lightning.errors import ArgumentError
from slp_lightning.inversion.threat import Threat
from slp_lightning.methods import InversionMethod
from slp_lightning.networks import FeatureNetwork
from slp_lightning.objectives import ObjectiveSpec, build_objective, row_name


def check_visualisation(
    method: InversionMethod, threat: Threat, shape: tuple[int, ...], objective: ObjectiveSpec,
    options: dict[str, Any] | None,
) -> None:  # fmt: skip
    """Refuse, before any step, a visualisation that cannot be: an objective the features (one
    row's ``shape``) cannot take, the ``tv`` method (its data term is normalised by target
    features), a defence or a stand-in (nothing is sent)."""
    if method.name == "tv":
        raise ArgumentError(
            "method tv normalises its data term by the targets' features; a visualisation has none: "
            "use slp, pixel, fft, slp_fft, slp_color or joint_pyramid",
            "FeatureInversion.method",
        )
    if not threat.trivial or threat.audited:
        raise ArgumentError(
            "a visualisation sends no features: leave defence and the attacker's network unset",
            "FeatureInversion.defence",
        )
    build_objective(objective, shape, options=options)


def visual_rows(objective: ObjectiveSpec, datamodule: Any) -> tuple[list[str], list[str]]:
    """The rows of a visualisation: a name and an objective spec each, every objective (one, or
    each of a list) once per seed of the datamodule's (``TargetImages.seeds``, default 1:
    ``channel_3``; ``channel_3_seed1`` with several); refused for a datamodule of images or
    features (a visualisation starts from noise)."""
    if getattr(datamodule, "given", False):
        raise ArgumentError(
            "a visualisation starts from noise and maximises its objective: it takes seeds, not "
            "images or features (the objective is not inversion)",
            "TargetImages.seeds", "FeatureInversion.objective",
        )  # fmt: skip
    seeds = getattr(datamodule, "seeds", None) or 1
    specs = [objective] if isinstance(objective, str) else list(objective)
    names, rows = [], []
    for spec in specs:
        for seed in range(seeds):
            name = row_name(spec) + (f"_seed{seed}" if seeds > 1 else "")
            while name in names:  # the same objective twice in a list
                name += "_"
            names.append(name)
            rows.append(spec)
    return names, rows


@torch.no_grad()
def natural_activations(objective: Any, network: FeatureNetwork, photos: Tensor) -> Tensor:
    """Each row's objective on each photograph (N, M), its across-row terms (diversity) left out:
    what the visualisations' activations are measured against."""
    device = network.device
    features = torch.cat([network(batch.to(device)).float() for batch in photos.split(16)])
    per_photo = []
    for feature in features:
        repeated = feature[None].expand(len(objective), *feature.shape)
        per_photo.append(objective.activation(repeated, across_rows=False))
    return torch.stack(per_photo, dim=1).cpu()
