"""Throughput by precision and batch (images inverted together): images·steps per second.

    python benchmarks/throughput.py --quick      # CPU: AlexNet conv5, 224 px, batch 8, fp32 vs bf16-mixed
    python benchmarks/throughput.py --out rows.json    # on a GPU: also 16-mixed and batches 8-256

Each cell is one ``Trainer.fit`` with the default callbacks (switch, writer, checkpoint) and
``--steps`` steps; its rate is batch / median step time after a warm-up. The final mean normalised
error of each run is printed beside it, so a precision that is fast because it broke the
optimisation shows (16-mixed exercises Lightning's gradient scaler; the image model and the losses
stay in float32 under every precision). On CUDA, "32-true" convolutions use TF32 (PyTorch's
default for cuDNN), and the peak GPU memory of each cell is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SLP_LIGHTNING_OFFLINE", "1")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

from benchmarks.overhead import StepTimer, median_step, targets  # noqa: E402
from slp_lightning import FeatureInversion, InversionCheckpoint, OutputWriter, PyramidSwitch  # noqa: E402
from slp_lightning.data.targets import TargetImages  # noqa: E402

# network, layer, weights, image side: the conv5 cell, and a trained network's mid layer.
CELLS = {
    "alexnet_conv5": ("alexnet", "conv5", "random", 224),
    "craft_relu3_3": ("craft_vgg16_bn", "relu3_3", "auto", 224),
}


def run_cell(cell: str, precision: str, batch: int, steps: int, folders: dict[int, str]) -> dict:
    """One timed ``fit``: rate, final error and peak GPU memory."""
    network, layer, weights, size = CELLS[cell]
    timer, writer = StepTimer(), OutputWriter()
    trainer = pl.Trainer(
        max_steps=steps, precision=precision, devices=1,
        callbacks=[PyramidSwitch(), writer, InversionCheckpoint(every_n_train_steps=10_000), timer],
        logger=TensorBoardLogger(tempfile.mkdtemp(prefix="bench_tp_"), name="tp"),
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    model = FeatureInversion(network=network, layer=layer, weights=weights, image_size=size)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, TargetImages(folders[batch], image_size=size))
    step = median_step(timer.stamps)
    return {
        "cell": cell, "precision": precision, "batch": batch, "steps": steps,
        "step_ms": 1e3 * step, "images_steps_per_s": batch / step,
        "error": json.loads((writer.run_dir / "results.json").read_text())["mean_normalized_error"],
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="conv5, batch 8, 12 steps (CPU: about a minute)"
    )
    parser.add_argument("--cells", nargs="+", choices=sorted(CELLS), default=["alexnet_conv5"])
    parser.add_argument(
        "--batches",
        nargs="+",
        type=int,
        default=None,
        help="default: 8 32 128 256 on a GPU, 8 on CPU",
    )
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="default: 32-true bf16-mixed 16-mixed on a GPU, 32-true bf16-mixed on CPU")  # fmt: skip
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    batches = args.batches or ([8, 32, 128, 256] if gpu else [8])
    precisions = args.precisions or (
        ["32-true", "bf16-mixed", "16-mixed"] if gpu else ["32-true", "bf16-mixed"]
    )
    steps = 12 if args.quick else args.steps
    folders = {batch: targets(batch) for batch in batches}
    device = torch.cuda.get_device_name() if gpu else "CPU"
    rows = []
    print(f"{device}, {steps} steps per cell\n\n| cell | batch | precision | images·steps/s | × 32-true | "
          "final error | peak GPU GB |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for cell in args.cells:
        for batch in batches:
            base = None
            for precision in precisions:
                row = run_cell(cell, precision, batch, steps, folders)
                rows.append({"device": device, **row})
                base = base or row["images_steps_per_s"]
                memory = "" if row["peak_gpu_gb"] is None else f"{row['peak_gpu_gb']:.2f}"
                speed = row["images_steps_per_s"]
                print(f"| {cell} | {batch} | {precision} | {speed:.1f} | {speed / base:.2f} | "
                      f"{100 * row['error']:.2f} % | {memory} |", flush=True)  # fmt: skip
                if args.out:
                    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
