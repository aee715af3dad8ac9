"""Shared fixtures: no network, a private TORCH_HOME, small real photographs (helpers.py holds
what tests import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slp_lightning.networks.torchvision_weights import OFFLINE_ENV

from helpers import PHOTOS


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never download: weights come only from files the tests write."""
    torch_home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return torch_home


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three natural photographs, reduced to 96 px on the short side."""
    folder = tmp_path_factory.mktemp("photos")
    for name, load in PHOTOS.items():
        image = Image.fromarray(np.asarray(load()))
        image.thumbnail((144, 96))
        image.save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def two_photos(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two of them, for runs on two processes (one image each)."""
    folder = tmp_path_factory.mktemp("two")
    for name in ["astronaut", "chelsea"]:
        (folder / f"{name}.png").write_bytes((photos / f"{name}.png").read_bytes())
    return folder
