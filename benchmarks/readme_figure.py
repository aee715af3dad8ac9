"""The README's figures: a trained network inverted per phase, beside plain descent.

    python benchmarks/readme_figure.py                 # ImageNet MobileNetV2: minutes on 2 CPU cores
    python benchmarks/readme_figure.py --figure craft  # CRAFT's VGG16-BN relu3_3: about 15 minutes
    python benchmarks/readme_figure.py --runs DIR      # compose again from DIR's existing runs

Runs the figure's config (``configs/mobilenet_v2.yaml``: ImageNet MobileNetV2, features.6, 128 px,
300 steps; or ``configs/vgg16_bn_trained.yaml``: CRAFT's VGG16-BN, relu3_3, 128 px, 1000 steps)
with ``slp`` and with ``pixel`` on validation photographs, then writes its PNG under ``docs/``:
per row the target, ``I_r`` at the end of each pyramid phase (coarsest first), and plain pixel
descent's result at the same budget.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torchvision.io import read_image
from torchvision.utils import make_grid, save_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.photos import photo_set  # noqa: E402

# name -> (config, its K, validation photographs, output)
FIGURES = {
    "mobilenet": (
        "configs/mobilenet_v2.yaml",
        6,
        ["coffee", "motorcycle", "ladybird"],
        "mobilenet_v2_features6.png",
    ),
    "craft": ("configs/vgg16_bn_trained.yaml", 4, ["astronaut", "china"], "craft_relu3_3.png"),
}
METHODS = ["slp", "pixel"]


def invert(config: str, method: str, images: Path, root: Path) -> Path:
    """One run of ``config``; its run directory."""
    subprocess.run(
        [sys.executable, "-m", "slp_lightning", "fit", "--config", config,
         f"--data.images={images}", f"--model.method={method}", f"--trainer.default_root_dir={root / method}",
         "--trainer.enable_progress_bar=false"],
        cwd=ROOT, env={**os.environ, "SLP_LIGHTNING_OFFLINE": "1"}, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return next((root / method).glob("*/version_*"))


def compose(
    runs: dict[str, Path], images: Path, photos: list[str], out: Path, levels: int = 4
) -> None:
    tiles = []
    for name in photos:
        tiles.append(read_image(str(images / f"{name}.png")))
        folder = runs["slp"] / "reconstructions"
        tiles += [read_image(str(folder / f"{name}_level{k}.png")) for k in range(levels, 0, -1)]
        tiles.append(read_image(str(runs["pixel"] / "reconstructions" / f"{name}.png")))
    size = tiles[1].shape[-1]
    tiles = [
        torch.nn.functional.interpolate(t[None].float(), size=(size, size), mode="area")[0] / 255
        for t in tiles
    ]
    save_image(make_grid(tiles, nrow=levels + 2, padding=4, pad_value=1.0), out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--figure", choices=sorted(FIGURES), default="mobilenet")
    parser.add_argument(
        "--runs", type=Path, help="a folder with slp/ and pixel/ runs already made (kept)"
    )
    args = parser.parse_args()
    config, levels, photos, out = FIGURES[args.figure]
    source = photo_set("validation")
    with tempfile.TemporaryDirectory() as scratch:
        images = Path(scratch) / "images"
        images.mkdir()
        for name in photos:
            (images / f"{name}.png").symlink_to(source / f"{name}.png")
        root = args.runs or Path(scratch)
        made = args.runs is not None and all(any((root / m).glob("*/version_*")) for m in METHODS)
        runs = {
            m: next((root / m).glob("*/version_*")) if made else invert(config, m, images, root)
            for m in METHODS
        }
        for method, run in runs.items():
            results = json.loads((run / "results.json").read_text())
            scores = [
                f"{i['name']} {100 * i['normalized_error']:.1f} % {i['psnr']:.1f} dB"
                for i in results["images"]
            ]
            print(method, results["steps"], scores)
        compose(runs, images, photos, ROOT / "docs" / out, levels)


if __name__ == "__main__":
    main()
