"""Shared fixtures: no network, a private TORCH_HOME, small real photographs, a tiny inversion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from slp_lightning.networks.weights import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = {"astronaut": skimage.data.astronaut, "chelsea": skimage.data.chelsea, "coffee": skimage.data.coffee}


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


def tiny_args(root: Path, images: Path | str, *extra: str) -> list[str]:
    """CLI arguments for a fast run: 64 px, 3 pyramid levels, AlexNet conv2, random weights."""
    return [
        "fit",
        f"--data.images={images}",
        "--model.layer=conv2",
        "--model.weights=random",
        "--model.image_size=64",
        "--model.pyramid_levels=3",
        "--model.compactness=0.01",
        "--switch.min_steps=5",
        "--switch.patience=5",
        "--switch.max_steps_per_level=15",
        "--trainer.max_steps=60",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


def launch(root: Path, args: list[str]) -> subprocess.Popen:
    """``python -m slp_lightning <args>`` in a subprocess in ``root`` (created), offline, importing
    this checkout; stdout and stderr together in ``stdout``."""
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SLP_LIGHTNING_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "slp_lightning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root, env=env,
    )  # fmt: skip
