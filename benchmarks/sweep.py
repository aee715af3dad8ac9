"""A sweep of L layers over N images against L separate runs of the same jobs.

    python benchmarks/sweep.py --quick     # about a minute on 2 CPU cores
    python benchmarks/sweep.py --batched   # a 9-job λ_D × K sweep, batched and job by job

Both sides run as the command line does (a fresh Python process each), on the same images, with
the same step budget: one ``fit`` with ``--sweep.layers`` against one ``fit`` per layer. The sweep
saves the start-up of L − 1 processes (imports, images, weights); the inversions themselves are
the same work. ``--batched``: one ``fit`` of 3 λ_D × 3 K (AlexNet conv2, 64 px, 400 steps, one
photograph, issue 38's size) with ``--sweep.batch true`` (the nine jobs as rows of one batch)
against ``false`` (job after job), the jobs' own time (the sum of ``summary.csv``'s seconds: the
process start-up apart, the same on both sides), and the largest difference of a job's mean
normalised error.
"""

from __future__ import annotations

import argparse
import csv
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
    parser.add_argument("--batched", action="store_true", help="a λ_D × K sweep batched vs not")
    args = parser.parse_args()
    if args.batched:
        batched()
        return
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


def batched() -> None:
    """Issue 38's 9-job sweep, batched against job by job, best of two each, interleaved."""
    common = [f"--data.images={targets(1)}", "--model.weights=random", "--model.layer=conv2",
              "--model.image_size=64", "--trainer.max_steps=400", "--trainer.enable_progress_bar=false",
              "--sweep.compactness=[0.01, 0.1, 1]", "--sweep.pyramid_levels=[2, 3, 4]"]  # fmt: skip
    seconds: dict[str, list[float]] = {"true": [], "false": []}
    jobs: dict[str, list[float]] = {"true": [], "false": []}  # the jobs' own, start-up apart
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as root:
        for attempt in range(2):
            for batch in seconds:
                out = f"{root}/{batch}{attempt}"
                seconds[batch].append(
                    run(*common, f"--trainer.default_root_dir={out}", f"--sweep.batch={batch}")
                )
                with open(next(Path(out).glob("*_sweep/version_0")) / "summary.csv") as handle:
                    summary = list(csv.DictReader(handle))
                rows[batch] = {r["job"]: float(r["mean_normalized_error"]) for r in summary}
                jobs[batch].append(sum(float(r["seconds"]) for r in summary))
    one, each = min(seconds["true"]), min(seconds["false"])
    own, own_each = min(jobs["true"]), min(jobs["false"])
    worst = max(abs(rows["true"][job] - rows["false"][job]) for job in rows["false"])
    print("| measure | value | target |\n|---|---|---|")
    print(
        f"| 9-job λ_D × K sweep, job by job / batched | {each / one:.2f} ({each:.1f} s / {one:.1f} s) | ≥ 2 |"
    )
    print(
        f"| the same, the jobs' own time (summary.csv's seconds; start-up apart) | "
        f"{own_each / own:.2f} ({own_each:.1f} s / {own:.1f} s) | report |"
    )
    print(
        f"| start-up and the rest, job by job / batched | {each - own_each:.1f} s / {one - own:.1f} s | report |"
    )
    print(f"| largest difference of a job's mean normalised error | {100 * worst:.4f} points | 0 |")


if __name__ == "__main__":
    main()
