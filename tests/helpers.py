"""Helpers the tests (and ``benchmarks/faults.py``, ``bad_inputs.py``) import: the tiny run's CLI
arguments, the launcher of a run in a subprocess, the photographs the ``photos`` fixture writes, a
PNG that claims any size, a few steps of an inversion without a Trainer, and slow marks for
families of cases. Fixtures live in ``conftest.py``."""

from __future__ import annotations

import io
import os
import shlex
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest
import skimage.data
import torch
from PIL import Image

from slp_lightning import FeatureInversion

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
}


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
        preexec_fn=_default_sigint,
    )  # fmt: skip


def _default_sigint() -> None:
    """SIGINT as a terminal's Ctrl-C gives it. A shell without job control starts background
    commands (``ci &``) with SIGINT ignored, every child inherits that, and Python then never
    raises KeyboardInterrupt: the signal tests would wait for a run that cannot hear them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def short_inversion(model: FeatureInversion, images: torch.Tensor, steps: int = 4) -> list[float]:
    """A few optimiser steps on ``images`` without a Trainer; the mean loss Z of each step."""
    model.set_targets(images, [f"x{i}" for i in range(len(images))])
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        Z = model.inversion.losses(model.schedule.finest_on)[2]
        Z.sum().backward()
        optimizer.step()
        losses.append(Z.mean().item())
    return losses


def refused(capsys: pytest.CaptureFixture, args: list[str]) -> str:
    """The one ``error:`` line of a command that must exit 2 without a traceback."""
    from slp_lightning.cli.commands import command

    with pytest.raises(SystemExit) as stop:
        command(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def resume_hint(line: str, step: int) -> list[str]:
    """The arguments of the command a stop printed (``stopped at step <step>; resume with:
    python -m slp_lightning fit …``), to run in-process with ``main``."""
    prefix = f"stopped at step {step}; resume with: python -m slp_lightning "
    assert line.startswith(prefix), line
    return shlex.split(line.removeprefix(prefix))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` px over one pixel's data: Pillow judges an
    image's size (its decompression-bomb check) from the header, before it decodes anything."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    # The IHDR chunk: its type at bytes 12-15, width and height at 16-23, its CRC at 29-32.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def slow_but(values: Iterable[object], *fast: object) -> list[object]:
    """``parametrize`` values of a family of cases that is slow as a whole: each marked slow but
    ``fast``, which stay in the quick run (``-m "not slow"``)."""
    return [
        pytest.param(value, marks=() if value in fast else pytest.mark.slow) for value in values
    ]


# A tiny ImageNet-free classifier for the semantic score: tests import it from a file they write.
CLASSIFIER_SOURCE = '''
import torch
from torch import nn


class ColourClassifier(nn.Module):
    """Images (N, 3, H, W) -> 5 logits: the mean R, G, B (``pool``, the penultimate features)
    through a fixed linear layer; red is class 0, green 1, blue 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 5)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv.bias.zero_()
            self.fc.weight.copy_(10 * torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0], [-1, -1, -1]]))
            self.fc.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(images)).flatten(1))
'''


def classifier_args(tmp_path: Path) -> list[str]:
    """``--eval`` options of a tiny classifier written into ``tmp_path`` (``CLASSIFIER_SOURCE``)."""
    (tmp_path / "classifier.py").write_text(CLASSIFIER_SOURCE)
    return [
        f"--eval.classifier={tmp_path / 'classifier.py'}:ColourClassifier",
        "--eval.features_layer=pool",
    ]
