"""Same results to the last digit: fixed-seed runs of two checkouts, compared.

    git worktree add /tmp/before <commit>
    python benchmarks/identity.py /tmp/before            # against this checkout; minutes on 2 cores

Runs each case of ``CASES`` (slp, pixel and tv on AlexNet conv2; slp on dense SIFT, on a torchvision
FX node and on CRAFT's trained VGG16-BN; 40 steps, random weights unless the network has its own,
scikit-image's astronaut and coffee at 96 px) with each checkout on its own ``PYTHONPATH`` and
prints, per case, whether every image's normalised error and PSNR in ``results.json`` are equal.
Exits 1 when one differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--model.image_size=64", "--model.pyramid_levels=3"]
CASES = {
    "alexnet conv2 slp": ["--model.layer=conv2", "--model.method=slp"],
    "alexnet conv2 pixel": ["--model.layer=conv2", "--model.method=pixel"],
    "alexnet conv2 tv": ["--model.layer=conv2", "--model.method=tv"],
    "dsift slp": ["--model.network=dsift", *SMALL],
    "torchvision vgg16 features.3 slp": ["--model.network=torchvision", "--model.arch=vgg16",
                                         "--model.layer=features.3", *SMALL],
    "craft_vgg16_bn relu3_3 slp": ["--model.network=craft_vgg16_bn", "--model.layer=relu3_3",
                                   "--model.weights=auto", *SMALL],
}  # fmt: skip


def photos(folder: Path) -> Path:
    for name in ("astronaut", "coffee"):
        Image.fromarray(np.asarray(getattr(skimage.data, name)())).save(folder / f"{name}.png")
    return folder


def run(checkout: Path, images: Path, extra: list[str]) -> list[tuple[str, float, float]]:
    """Per image ``(name, normalised error, PSNR)`` of one case run by ``checkout``."""
    with tempfile.TemporaryDirectory() as root:
        command = [
            sys.executable, "-m", "slp_lightning", "fit", f"--data.images={images}", "--model.weights=random",
            "--model.image_size=96", "--trainer.max_steps=40", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={root}", *extra,
        ]  # fmt: skip
        env = {**os.environ, "SLP_LIGHTNING_OFFLINE": "1", "PYTHONPATH": str(checkout)}
        subprocess.run(command, cwd=checkout, env=env, check=True, capture_output=True)
        results = json.loads(next(Path(root).rglob("results.json")).read_text())
    return [(i["name"], i["normalized_error"], i["psnr"]) for i in results["images"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path, help="the other checkout")
    parser.add_argument("after", type=Path, nargs="?", default=ROOT, help="default: this checkout")
    args = parser.parse_args()
    differ = 0
    with tempfile.TemporaryDirectory() as scratch:
        images = photos(Path(scratch))
        for case, extra in CASES.items():
            before, after = (
                run(args.before.resolve(), images, extra),
                run(args.after.resolve(), images, extra),
            )
            differ += before != after
            print(f"{case}: {'identical' if before == after else 'DIFFERENT'} (first image: "
                  f"{before[0][1]!r} / {after[0][1]!r})")  # fmt: skip
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
