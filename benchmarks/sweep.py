"""A sweep of L layers over N images against L separate runs of the same jobs.

    python benchmarks/sweep.py --quick     # about a minute on 2 CPU cores

Both sides run as the command line does (a fresh Python process each), on the same images, with
the same step budget: one ``fit`` with ``--sweep.layers`` against one ``fit`` per layer. The sweep
saves the start-up of L − 1 processes (imports, images, weights); the inversions themselves are
the same work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.overhead import targets  # noqa: E402


def run(*args: str) -> float:
    start = time.perf_counter()
    env = {**os.environ, "SLP_LIGHTNING_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "slp_lightning", "fit", *args], cwd=ROOT, env=env,
                   check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4 layers, 4 images, 96 px, 30 steps")
    args = parser.parse_args()
    layers = ["conv1", "conv2", "conv3", "conv4"] + ([] if args.quick else ["conv5", "fc6"])
    images, size, steps = (4, 96, 30) if args.quick else (8, 224, 100)
    folder = targets(images)
    common = [f"--data.images={folder}", "--model.weights=random", f"--model.image_size={size}",
              f"--trainer.max_steps={steps}", "--trainer.enable_progress_bar=false",
              "--switch.max_steps_per_level=10", "--switch.min_steps=5"]  # fmt: skip
    with tempfile.TemporaryDirectory() as root:
        sweep = run(
            *common,
            f"--trainer.default_root_dir={root}/sweep",
            f"--sweep.layers=[{', '.join(layers)}]",
        )
        separate = sum(run(*common, f"--trainer.default_root_dir={root}/single", f"--model.layer={layer}")
                       for layer in layers)  # fmt: skip
    print("| measure | value | target |\n|---|---|---|")
    print(
        f"| sweep of {len(layers)} layers × {images} images ({size} px, {steps} steps) / "
        f"{len(layers)} separate runs | {sweep / separate:.3f} ({sweep:.1f} s / {separate:.1f} s) | < 1 |"
    )


if __name__ == "__main__":
    main()
