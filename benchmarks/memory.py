"""Peak memory of a chunked run against the dataset's size (issue: data at scale).

    python benchmarks/memory.py --quick      # 16 and 256 images, chunks of 16, 64 px: a few minutes on 2 cores

Each run is a fresh process (``python -m slp_lightning fit --data.chunk_size 16``) on a folder of
N photographs (scikit-image's, repeated), whose peak resident memory it reports. Bounded memory
means the 256-image run peaks within 1.2× of the 16-image run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.overhead import targets  # noqa: E402


def peak_mb(images: str, chunk: int, size: int, steps: int, root: str) -> float:
    """Peak RSS (MB) of one chunked ``fit`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "slp_lightning", "fit", f"--data.images={images}", f"--data.chunk_size={chunk}",
         "--model.layer=conv2", "--model.weights=random", f"--model.image_size={size}", "--model.pyramid_levels=3",
         f"--trainer.max_steps={steps}", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={root}"],
        cwd=ROOT, env={**os.environ, "SLP_LIGHTNING_OFFLINE": "1"}, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest child so far: measure the small run first.
    return max(after, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 px, 3 steps a chunk")
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--counts", nargs=2, type=int, default=[16, 256])
    args = parser.parse_args()
    size, steps = (64, 3) if args.quick else (224, 20)
    small, large = args.counts
    with tempfile.TemporaryDirectory() as root:
        first = peak_mb(targets(small), args.chunk, size, steps, root)
        second = peak_mb(targets(large), args.chunk, size, steps, root)
    print(f"| peak RSS, {large} images / {small} images (chunks of {args.chunk}, {size} px, AlexNet conv2) "
          f"| {second / first:.2f} ({second:.0f} MB / {first:.0f} MB) | ≤ 1.2 |")  # fmt: skip


if __name__ == "__main__":
    main()
