"""Where network weights come from: the torchvision cache or a download, a local file, or a seed.

Accepted specs: ``auto`` (pretrained when obtainable, else seeded random with a loud warning),
the name of a torchvision weights enum member such as ``IMAGENET1K_V1`` (strict), a path to a
state dict, or ``random``. Set ``SLP_LIGHTNING_OFFLINE=1`` to never try a download.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

OFFLINE_ENV = "SLP_LIGHTNING_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30.0
RANDOM_SEED = 0
RANDOM = f"random (seed {RANDOM_SEED})"


class RandomWeightsWarning(UserWarning):
    """The network runs with random weights: reconstructions show what the architecture keeps."""


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps ``weights`` once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _fetch(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    cached = cached_weights_path(weights)
    if not cached.exists() and os.environ.get(OFFLINE_ENV):
        raise FileNotFoundError(f"{cached} does not exist and {OFFLINE_ENV} forbids a download")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a dead network must fail, not hang
    try:
        return weights.get_state_dict(progress=True)
    finally:
        socket.setdefaulttimeout(previous)


def _warn_random(name: str, why: str, remedy: str) -> None:
    bar = "!" * 78
    warnings.warn(
        f"\n{bar}\n{name}: {why}.\nUsing a RANDOM network (seed {RANDOM_SEED}); every output of "
        f"this run records weights={RANDOM!r}.\n{remedy}\n{bar}",
        RandomWeightsWarning,
        stacklevel=3,
    )


def load_weights(
    build: Callable[[], nn.Module],
    spec: str,
    pretrained: type[WeightsEnum] | None,
    *,
    name: str,
    load: Callable[[nn.Module, dict], None] = nn.Module.load_state_dict,
) -> tuple[nn.Module, str]:
    """Build a network with ``build()`` and give it the weights ``spec`` asks for.

    ``pretrained`` is the torchvision weights enum of the network (``None`` when torchvision has
    none: then ``auto`` means random); ``load(model, state_dict)`` loads a state dict.
    Returns the network and a description of its weights for the run's outputs. Random weights
    are drawn from a fixed seed without touching the global RNG, so every process and every run
    gets the same network.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = build()
    members = list(pretrained.__members__) if pretrained is not None else []
    if spec == "random":
        return model, RANDOM
    if spec == "auto" and pretrained is None:
        _warn_random(
            name, "no downloadable weights exist",
            "Pass converted weights with --model.weights /path/to/state_dict.pth.",
        )  # fmt: skip
        return model, RANDOM
    if spec == "auto" or spec in members:
        member = pretrained[spec] if spec != "auto" else pretrained.DEFAULT
        try:
            state = _fetch(member)
        except Exception as error:  # noqa: BLE001 - any failure to obtain the file is reported
            if spec != "auto":
                raise RuntimeError(
                    f"cannot load {name} weights {member.name}: {error}. Put the file at "
                    f"{cached_weights_path(member)} (TORCH_HOME moves it) or pass a local state "
                    f"dict with --model.weights /path/to/weights.pth"
                ) from error
            _warn_random(
                name, f"pretrained weights {member.name} are not available ({error})",
                f"Copy {Path(member.url).name} to {cached_weights_path(member).parent} "
                f"to use the real ones.",
            )  # fmt: skip
            return model, RANDOM
        load(model, state)
        return model, f"{name} {member.name}"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(
            f"weights {spec!r} for {name}: expected 'auto', 'random', "
            f"{''.join(f'{m!r}, ' for m in members)}or the path of an existing state-dict file"
        )
    load(model, torch.load(path, map_location="cpu", weights_only=True))
    return model, str(path)
