"""The one place that writes a run's files: PNGs, the reconstruction sheet, ``results.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2.functional import pil_to_tensor
from torchvision.utils import make_grid, save_image

if TYPE_CHECKING:
    from slp_lightning.inversion import FeatureInversion

RECONSTRUCTIONS = "reconstructions"


def write_png(image: Tensor, run_dir: str | Path, stem: str) -> Path:
    """Save one image (3, H, W) in [0, 1] as ``run_dir/reconstructions/<stem>.png``."""
    path = Path(run_dir) / RECONSTRUCTIONS / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image.float().cpu(), path)
    return path


def write_sheet(targets: Tensor, names: list[str], levels: int, run_dir: str | Path) -> Path:
    """One row per image: the target, then ``I_r`` at the end of each phase, coarse to fine.

    ``targets`` is (N, C, H, W) with C = 1 or 3; the sheet is RGB.
    Phases that never ran (a budget ended the run first) are left blank.
    """
    folder = Path(run_dir) / RECONSTRUCTIONS
    tiles = []
    for target, name in zip(targets.float().cpu().expand(-1, 3, -1, -1), names):
        tiles.append(target)
        for level in range(levels, 0, -1):
            png = folder / f"{name}_level{level}.png"
            blank = torch.ones_like(target)
            tiles.append(pil_to_tensor(Image.open(png).convert("RGB")).float() / 255 if png.exists() else blank)
    path = Path(run_dir) / "sheet.png"
    save_image(make_grid(tiles, nrow=levels + 1, padding=4, pad_value=1.0), path)
    return path


def write_results(
    module: FeatureInversion,
    names: list[str],
    errors: dict[str, Tensor],
    levels: Tensor,
    switch_steps: Tensor,
    steps: int,
    status: str,
    path: Path,
) -> Path:
    """Write ``results.json``: the run's settings and, per image, its errors on the final ``I_r``
    (``errors`` as from ``FeatureInversion.evaluate``), final level and switch steps."""
    images = [
        {
            "name": name,
            "feature_error": float(errors["feature_error"][row]),
            "relative_error": float(errors["relative_error"][row]),
            "final_level": int(levels[row]),
            # Column j-1 holds the step level j came on: coarse to fine is right to left.
            "switch_steps": [int(s) for s in switch_steps[row].flip(0) if s >= 0],
        }
        for row, name in enumerate(names)
    ]
    results = {
        "network": module.network.network,
        "layer": module.network.layer,
        "weights": module.network.weights,
        "pyramid_levels": module.pyramid.levels,
        "compactness": module.compactness,
        "steps": steps,
        "status": status,
        "images": images,
        "mean_relative_error": sum(i["relative_error"] for i in images) / max(len(images), 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
