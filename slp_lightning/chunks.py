"""Datasets in chunks: invert a folder, glob or features file of any size, ``chunk_size``
targets at a time, so that memory is bounded by the chunk and not by the dataset.

Each chunk is a run of its own (``chunk_0000/``: PNGs, ``results.json``, checkpoints,
TensorBoard) under the dataset's run directory; each finished chunk appends one line to
``results.jsonl`` (its images' results), and ``summary.json`` holds the means over every image
so far. Resuming the directory skips finished chunks and resumes an unfinished one from its
``last.ckpt``. With several devices every chunk is shared out among them (each process inverts
its own images of the chunk), as a single run is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from slp_lightning.callbacks import output_writer
from slp_lightning.data import TargetImages
from slp_lightning.inversion import FeatureInversion

RESULTS = "results.jsonl"
SUMMARY = "summary.json"


def chunk_name(index: int) -> str:
    return f"chunk_{index:04d}"


def finished_chunks(run_dir: Path) -> dict[int, dict]:
    """The chunks ``results.jsonl`` holds: index -> its line."""
    path = run_dir / RESULTS
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {line["chunk"]: line for line in lines}


def summarize(run_dir: Path, total: int) -> dict:
    """``summary.json``: the means over every image of the finished chunks."""
    images = [image for line in sorted(finished_chunks(run_dir).items()) for image in line[1]["images"]]

    def mean(measure: str) -> float | None:
        values = [image[measure] for image in images]
        return None if not values or None in values else sum(values) / len(values)

    summary = {
        "images": len(images), "of": total,
        **{f"mean_{m}": mean(m) for m in ("normalized_error", "relative_error", "psnr", "ssim", "hf_ratio")},
    }  # fmt: skip
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(
    model: FeatureInversion,
    data: TargetImages,
    trainer_for: Callable[[TensorBoardLogger], Trainer],
    run_dir: Path,
) -> dict:
    """Invert every target of ``data`` in chunks of ``data.chunk_size``, with ``model``'s
    settings and a Trainer from ``trainer_for(logger)`` per chunk (it needs an
    ``OutputWriter``); skips the chunks ``run_dir/results.jsonl`` already holds. Returns the
    summary (on every process; only the first writes files)."""
    names = data.target_names()
    size = data.chunk_size
    count = math.ceil(len(names) / size)
    done = finished_chunks(run_dir)
    if done:
        rank_zero_info(f"resuming {run_dir}: {len(done)} of {count} chunks finished, skipped")
    # Every chunk is normalised by the first chunk's N_f (or the model's), so errors compare.
    n_f = model.hparams.n_f or next((line["N_f"] for _, line in sorted(done.items())), None)
    for index in range(count):
        if index in done:
            continue
        rows = range(index * size, min((index + 1) * size, len(names)))
        chunk = data.chunk(rows)
        trainer = trainer_for(TensorBoardLogger(run_dir.parent, name=run_dir.name, version=chunk_name(index)))
        writer = output_writer(trainer, "a chunked run's Trainers")
        last = run_dir / chunk_name(index) / "checkpoints" / "last.ckpt"
        job = model.with_settings(n_f=n_f)
        trainer.fit(job, datamodule=chunk, ckpt_path=last if last.exists() else None)
        n_f = job.n_f
        if trainer.is_global_zero:
            results = writer.results
            line = {"chunk": index, "steps": results["steps"], "N_f": results["N_f"], "images": results["images"]}
            with open(run_dir / RESULTS, "a") as handle:
                handle.write(json.dumps(line) + "\n")
            summary = summarize(run_dir, len(names))
            error = summary["mean_normalized_error"]
            rank_zero_info(f"chunk {index + 1}/{count} done: {summary['images']}/{len(names)} images, "
                           f"mean normalised error so far {100 * error:.2f} %")  # fmt: skip
    return summarize(run_dir, len(names)) if rank_zero_only.rank == 0 else {}
