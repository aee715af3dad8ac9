"""Peak memory of a chunked run against the dataset's size, and the per-target memory estimate
that sizes ``--data.chunk_size auto`` against what a run really takes (issue: data at scale).

    python benchmarks/memory.py --quick      # 16 and 256 images, chunks of 16, 64 px: a few minutes on 2 cores
    python benchmarks/memory.py --estimate   # chunk_sizes.target_bytes against measured memory per target

Each run is a fresh process (``python -m slp_lightning fit``) on a folder of N photographs
(scikit-image's, repeated), whose peak resident memory it reports. Bounded memory means the
256-image run peaks within 1.2× of the 16-image run. The estimate is measured as the growth of
peak memory from a one-run of 2 targets to one of 10, per target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.overhead import targets  # noqa: E402

ESTIMATED = [  # network, layer, image size, K
    ("alexnet", "conv5", 224, 6),
    ("craft_vgg16_bn", "relu3_3", 128, 4),
]


def peak_mb(images: str, root: str, *options: str) -> float:
    """Peak RSS (MB) of one ``fit`` in a child process (3 steps unless ``options`` say)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "slp_lightning", "fit", f"--data.images={images}", "--trainer.max_steps=3",
         "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={root}", *options],
        cwd=ROOT, env={**os.environ, "SLP_LIGHTNING_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(
        child.pid, 0
    )  # this child's own peak, not the largest child's so far
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"fit {' '.join(options)} failed with exit {child.returncode}")
    return usage.ru_maxrss / 1024


def chunked(args: argparse.Namespace) -> None:
    size, steps = (64, 3) if args.quick else (224, 20)
    small, large = args.counts
    options = [f"--data.chunk_size={args.chunk}", "--model.layer=conv2", "--model.weights=random",
               f"--model.image_size={size}", "--model.pyramid_levels=3", f"--trainer.max_steps={steps}"]  # fmt: skip
    with tempfile.TemporaryDirectory() as root:
        first = peak_mb(targets(small), root, *options)
        second = peak_mb(targets(large), root, *options)
    print(f"| peak RSS, {large} images / {small} images (chunks of {args.chunk}, {size} px, AlexNet conv2) "
          f"| {second / first:.2f} ({second:.0f} MB / {first:.0f} MB) | ≤ 1.2 |")  # fmt: skip


def estimate() -> None:
    from slp_lightning.module.lightning_model import FeatureInversion
    from slp_lightning.running.chunk_sizes import target_bytes

    print(
        "| network, layer, size | estimated MB per target | measured MB per target | estimate / measured |"
    )
    print("|---|---|---|---|")
    for network, layer, size, levels in ESTIMATED:
        weights = "random" if network == "alexnet" else "auto"
        options = [f"--model.network={network}", f"--model.layer={layer}", f"--model.weights={weights}",
                   f"--model.image_size={size}", f"--model.pyramid_levels={levels}",
                   "--data.chunk_size=null"]  # fmt: skip
        with tempfile.TemporaryDirectory() as root:
            peaks = [peak_mb(targets(count), root, *options) for count in (2, 10)]
        measured = (peaks[1] - peaks[0]) / 8
        model = FeatureInversion(
            network=network, layer=layer, weights=weights, image_size=size, pyramid_levels=levels
        )
        estimated = target_bytes(model) / 2**20
        print(
            f"| {network} {layer}, {size} px | {estimated:.0f} | {measured:.0f} | {estimated / measured:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="64 px, 3 steps a chunk")
    parser.add_argument(
        "--estimate", action="store_true", help="the per-target estimate against measurement"
    )
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--counts", nargs=2, type=int, default=[16, 256])
    args = parser.parse_args()
    estimate() if args.estimate else chunked(args)


if __name__ == "__main__":
    main()
