"""From settings to an inversion and back to its problem: the networks (the victim's and a
stand-in), the threat, the method, the learning rates and every check a setting needs before any
step (``build``); the targets or a visualisation's rows set, ``I_pre`` made from the seed
(``start_targets``, ``start_visualisation``). Plain PyTorch: ``FeatureInversion`` is the thin
Lightning layer over it."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from slp_lightning.data.images import reference_images
from slp_lightning.defences import build_defence
from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.inversion.n_f import measure_n_f
from slp_lightning.inversion.threat import Threat, stand_in
from slp_lightning.inversion.torch_model import Inversion
from slp_lightning.inversion.visualisation import check_visualisation
from slp_lightning.maths.losses import compactness_for_layer
from slp_lightning.maths.pyramid import check_pyramid_size
from slp_lightning.maths.schedule import LearningRates, band_multiples
from slp_lightning.maths.transforms import build_transforms
from slp_lightning.methods import MethodSettings, build_method
from slp_lightning.networks import FeatureNetwork, build_feature_network, default_coarse_lr
from slp_lightning.objectives import INVERSION, build_objective

# The arguments of ``build_feature_network`` besides the network and its layer.
NETWORK_OPTIONS = (
    "weights", "arch", "weights_map", "network_args", "in_channels", "input_mean", "input_std", "output", "tokens",
)  # fmt: skip


@dataclass
class Built:
    """What ``build`` makes: the inversion, each image's learning rates, λ_D as resolved, whether
    it is a visualisation, and the victim's network as built."""

    inversion: Inversion
    rates: LearningRates
    compactness: float
    visualises: bool
    network: FeatureNetwork


def build(
    method: str, network: Any, layer: str | None, pyramid_levels: int, compactness: float | None,
    image_size: int | None, init_noise: float, tv_weights: tuple[float, float] | None, lr_schedule: str,
    coarse_lr: float | None, band_lr: float | list[float], defence: Any, defence_args: dict | None,
    defence_aware: bool, attacker_network: Any, attacker_weights: str | None, attacker_layer: str | None,
    objective: Any, objective_args: dict | None, transforms: Any, **options: Any,
) -> Built:  # fmt: skip
    """The inversion ``FeatureInversion``'s arguments describe (``options``: the network's,
    ``NETWORK_OPTIONS``), every setting checked: a bad one is an ``ArgumentError`` now."""
    check_range(pyramid_levels, "FeatureInversion.pyramid_levels", low=1, integer=True)
    check_range(image_size, "FeatureInversion.image_size", low=1, integer=True)
    if options.get("in_channels") not in (None, 1, 3):
        raise ArgumentError(
            f"in_channels is 3 (colour) or 1 (grey); got {options['in_channels']!r}",
            "FeatureInversion.in_channels",
        )
    victim = build_feature_network(network, layer, **options)
    attacker = stand_in(
        victim, attacker_network, attacker_layer, attacker_weights, network, layer, options
    )
    threat = Threat(
        build_defence(defence, defence_args), defence_aware, victim=None if attacker is None else victim,
        audited=defence is not None,
    )  # fmt: skip
    if compactness is None:
        compactness = compactness_for_layer(victim.name, victim.layer)
    inverted = build_method(
        method,
        MethodSettings(
            victim.layer, compactness, tv_weights, init_noise=init_noise, levels=pyramid_levels
        ),
    )
    multiples = band_multiples(band_lr) if inverted.coarse_to_fine else (1.0,)
    rates = LearningRates(
        lr_schedule, default_coarse_lr(victim.name) if coarse_lr is None else coarse_lr, multiples
    )
    if not inverted.pixel_I_pre and rates.filters_bands:
        raise ArgumentError(
            f"band_lr filters pyramid bands of I_pre's pixels; the {inverted.name} method's I_pre is not "
            f"pixels, give it band_lr 1",
            "FeatureInversion.band_lr", "FeatureInversion.method",
        )  # fmt: skip
    size = victim.input_size if image_size is None else image_size
    inversion = Inversion(attacker or victim, inverted, pyramid_levels, size, threat)
    visualises = objective not in (None, INVERSION)
    if visualises:
        check_visualisation(inverted, threat, inversion.feature_shape, objective, objective_args)
    build_transforms(transforms)  # a bad setting fails now
    if rates.filters_bands:
        try:
            check_pyramid_size(size, size, len(multiples))
        except ValueError as error:
            raise ArgumentError(
                f"band_lr has {len(multiples)} levels, too many for image_size {size} ({error}): give band_lr "
                f"fewer entries or a larger image_size",
                "FeatureInversion.band_lr", "FeatureInversion.image_size",
            ) from None  # fmt: skip
    return Built(inversion, rates, compactness, visualises, victim)


def _arguments() -> frozenset[str]:
    return frozenset(inspect.signature(build).parameters) - {"options"} | set(NETWORK_OPTIONS)


def _start(inversion: Inversion, count: int, seed: int) -> Tensor:
    """Every target's ``I_pre`` at the start, from the seed (a process then keeps its rows)."""
    size = inversion.image_size
    shape = (count, inversion.network.in_channels, size, size)
    return inversion.method.initial_I_pre(shape, torch.Generator().manual_seed(seed))


@dataclass
class Started:
    """What ``start_targets`` leaves beside the inversion: the targets as the network takes them
    (every target's, for the fingerprint) and an audit's utility (``threat.Threat.utility``)."""

    targets: Tensor | None
    utility: Tensor | None
    utility_about: str | None


def start_targets(
    inversion: Inversion, targets: Tensor | None, names: list[str], rows: Tensor, features: Tensor | None,
    seed: int, n_f: float | None, references: str | None, device: torch.device, jobs: int = 1,
) -> Started:  # fmt: skip
    """Set the targets (N, 3, S, S) in [0, 1] (or their ``features``, N, …) of which this process
    inverts ``rows``: f(I) of every target (N_f needs them all, and it saves a gather), N_f
    (``n_f``, else measured), what the attacker observes of them (seeded by ``seed`` and each
    target's name), an aware attacker's calibration on photographs that are not the targets, an
    audit's utility, and ``I_pre`` of this process's rows from ``seed``. With ``jobs`` (a batch of
    jobs: the targets once per job, job after job), each job's images start as in its own run."""
    targets, features = inversion.take(targets, features)
    once = _start(inversion, len(names) // jobs, seed)
    I_pre = once.repeat(jobs, *[1] * (once.dim() - 1))
    n_f = n_f if n_f is not None else measure_n_f(inversion, features, references)
    observed = inversion.observe(features, names, seed)
    if inversion.threat.aware and inversion.threat.defence.defends:  # photographs of its own
        inversion.calibrate(
            reference_images(references, inversion.image_size, exclude=tuple(names))
        )
    utility, about = inversion.threat.utility(inversion.victim, targets, features, observed)
    inversion.set_targets(
        None if targets is None else targets[rows],
        features[rows],
        I_pre[rows].to(device),
        n_f,
        observed[rows],
    )
    return Started(targets, utility, about)


def job_rows(
    inversion: Inversion, jobs: tuple[list[float], list[int]], count: int
) -> tuple[Tensor, Tensor]:
    """A batch of jobs (each job's λ_D and K) whose ``count`` images are each job's targets, job
    after job: sets each image's λ_D on ``inversion``; returns each image's K and job (N,)."""
    compactness, levels = jobs
    if count % len(levels):
        raise ValueError(f"a batch of {len(levels)} jobs has {count} images, not the same per job")
    per_job = count // len(levels)
    weights = torch.tensor(compactness, dtype=torch.float32).repeat_interleave(per_job)
    inversion.register_buffer("row_compactness", weights.to(inversion.I_pre), persistent=False)
    return torch.tensor(levels).repeat_interleave(per_job), torch.arange(
        len(levels)
    ).repeat_interleave(per_job)


def start_visualisation(
    inversion: Inversion, specs: list[str], rows: Tensor, seed: int, options: dict | None, transforms: Any,
    device: torch.device,
) -> None:  # fmt: skip
    """Make the inversion a visualisation of ``specs`` (one objective per row) of which this
    process has ``rows``: ``I_pre`` from ``seed``, no targets, the transforms seeded too."""
    I_pre = _start(inversion, len(specs), seed)
    objective = build_objective(
        [specs[i] for i in rows.tolist()], inversion.feature_shape, options=options
    )
    inversion.set_objective(objective, I_pre[rows].to(device))
    inversion.transforms = build_transforms(transforms, seed)


def settings(
    inversion: Inversion, hparams: Any, compactness: float, visualises: bool
) -> dict[str, Any]:
    """What defines an inversion's problem besides its targets, as ``results.json`` names it:
    ``hparams`` are ``FeatureInversion``'s, ``compactness`` λ_D as resolved."""
    network, threat = inversion.victim, inversion.threat.describe(inversion.network)
    return {
        "method": inversion.method.name, "network": network.name, "arch": hparams.arch, "layer": network.layer,
        "weights": network.weights, "output": hparams.output, "tokens": hparams.tokens,
        "image_size": inversion.image_size, "pyramid_levels": inversion.pyramid.levels, "compactness": compactness,
        **({"threat": threat} if threat else {}),
        **({"objective": hparams.objective, "transforms": hparams.transforms} if visualises else {}),
    }  # fmt: skip


#: ``FeatureInversion``'s arguments that ``build`` takes.
ARGUMENTS = _arguments()
