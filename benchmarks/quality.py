"""This method against the baselines on dense SIFT, at the same step budget (issue: quality).

    python benchmarks/quality.py --quick                 # < 5 minutes on 2 CPU cores
    python benchmarks/quality.py --images DIR            # the full configs/paper/table2_sift.yaml

Runs the Table 2 sweep (grey and colour SIFT × slp, pixel, tv), prints its summary.md, and plots
the sLP job's loss across its level switches to ``loss_curve.png`` beside this file.
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

HELD_OUT = ["rocket", "camera", "coins", "horse"]


def plot_loss_curve(job_dir: Path, out: Path) -> None:
    """``loss/Z`` (log scale) and ``pyramid/level`` against the step, from TensorBoard events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(job_dir), size_guidance={"scalars": 0})
    events.Reload()
    loss, level = events.Scalars("loss/Z"), events.Scalars("pyramid/level")
    figure, axes = plt.subplots(figsize=(6, 3))
    axes.semilogy([e.step for e in loss], [e.value for e in loss], color="C0")
    axes.set_xlabel("step")
    axes.set_ylabel("loss Z (mean over images)", color="C0")
    twin = axes.twinx()
    twin.step([e.step for e in level], [e.value for e in level], where="post", color="C1")
    twin.set_ylabel("finest level on (mean)", color="C1")
    axes.set_title("grey dense SIFT: coarse-to-fine phases, then the full-detail phase")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 photographs, 400 steps")
    parser.add_argument("--images", help="folder of images (default: scikit-image photographs)")
    args = parser.parse_args()
    # Not the photographs the defaults were tuned on (astronaut, chelsea, coffee).
    images = args.images or targets(2 if args.quick else 4, HELD_OUT)
    extra = ["--trainer.max_steps=400"] if args.quick else []
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(
            [sys.executable, "-m", "slp_lightning", "fit", "--config", "configs/paper/table2_sift.yaml",
             f"--data.images={images}", f"--trainer.default_root_dir={root}",
             "--trainer.enable_progress_bar=false", *extra],
            cwd=ROOT, env={**os.environ, "SLP_LIGHTNING_OFFLINE": "1"}, check=True, capture_output=True,
        )  # fmt: skip
        run = Path(root) / "sweep" / "version_0"
        print((run / "summary.md").read_text())
        plot_loss_curve(run / "slp_dsift", Path(__file__).with_name("loss_curve.png"))


if __name__ == "__main__":
    main()
