"""Datasets in chunks: invert a folder, glob or features file of any size, ``chunk_size``
targets at a time, so that memory is bounded by the chunk and not by the dataset.

Each chunk is a run of its own (``chunk_0000/``: PNGs, ``results.json``, checkpoints,
TensorBoard) under the dataset's run directory; each finished chunk appends one line to
``results.jsonl`` (its images' results), and ``summary.json`` holds the means over every image
(after each chunk of a one-process run; at the end with several). Resuming the directory skips
finished chunks and resumes an unfinished one from its ``last.ckpt``; ``chunks.json`` holds the
chunk size and the problem (settings, targets' names) the resume must match.

With several devices the chunks are dealt out (``dealing``): every process takes the next chunk
no process has claimed yet and inverts it alone on its device, so that every device stays busy to
the end. N_f is measured once, on the first chunk, so that errors compare across the dataset.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from slp_lightning.data.targets import TargetImages
from slp_lightning.errors import ArgumentError
from slp_lightning.module.lightning_model import FeatureInversion
from slp_lightning.outputs import semantic
from slp_lightning.outputs.files import image_means, measured
from slp_lightning.running.dealing import Workers, deal
from slp_lightning.running.pieces import (
    append_line,
    check_plan,
    fit_piece,
    problem,
    read_lines,
    say_how_to_resume,
)
from slp_lightning.running.run_folders import logger_for

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
PLAN = "chunks.json"  # the chunk size and problem a chunked run was started with: its resume needs the same


def _lost_folders(run_dir: Path, done: dict[int, dict]) -> None:
    """Say which finished chunks have lost their folders (their lines hold their results)."""
    lost = [
        chunk_name(index) for index in sorted(done) if not (run_dir / chunk_name(index)).is_dir()
    ]
    if lost:
        rank_zero_warn(
            f"{', '.join(lost)}: finished (in {RESULTS}), but the folder is gone from {run_dir}: "
            f"the results are kept, the PNGs, sheet and checkpoints are lost; to run a chunk again, "
            f"delete its line from {RESULTS}"
        )


def planned_chunk_size(run_dir: Path, chunk_size: int | str | None) -> int:
    """The chunk size of the chunked run in ``run_dir`` (being resumed): ``chunk_size`` must be
    the same, or ``auto``."""
    plan = run_dir / PLAN
    if not plan.exists():
        raise ValueError(
            f"{run_dir} is not a chunked run's folder (it has no {PLAN}): resume a single run from "
            f"its checkpoint file, e.g. {run_dir / 'checkpoints' / 'last.ckpt'}"
        )
    planned = json.loads(plan.read_text())["chunk_size"]
    if chunk_size not in (planned, "auto"):
        raise ArgumentError(
            f"{run_dir} was chunked by {planned}, not {chunk_size}: give chunk_size {planned} "
            f"(or auto) to resume it",
            "TargetImages.chunk_size",
        )
    return planned


def chunk_name(index: int) -> str:
    return f"chunk_{index:04d}"


def finished_chunks(run_dir: Path) -> dict[int, dict]:
    """The chunks ``results.jsonl`` holds: index -> its line."""
    path = run_dir / RESULTS
    return {line["chunk"]: line for line in read_lines(path)}


def summarize(run_dir: Path, total: int) -> dict:
    """``summary.json``: the means over every image of the finished chunks."""
    images = [
        image for line in sorted(finished_chunks(run_dir).items()) for image in line[1]["images"]
    ]
    summary = {"images": len(images), "of": total, **image_means(images)}
    if images and all(
        "semantic" in image for image in images
    ):  # scored by an evaluation classifier
        summary.update(semantic.means_of([image["semantic"] for image in images]))
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _first_chunk_n_f(
    model: FeatureInversion, data: TargetImages, size: int, device: torch.device
) -> float:
    first = data.chunk(range(min(size, len(data.target_names()))))
    model.network.to(device)
    try:
        return model.measure_n_f(first.targets, first.features)
    finally:
        model.network.cpu()


def run(
    model: FeatureInversion,
    data: TargetImages,
    chunk_size: int,
    trainer_for: Callable[[TensorBoardLogger], Trainer],
    run_dir: Path,
    workers: Workers = Workers(),  # noqa: B008 - frozen: one process, no collectives
) -> dict:
    """Invert every target of ``data`` in chunks of ``chunk_size``, with ``model``'s settings
    and a Trainer from ``trainer_for(logger)`` per chunk (it needs an ``OutputWriter``; with
    several ``workers``, a one-device Trainer on this worker's device); skips the chunks
    ``run_dir/results.jsonl`` already holds. Returns the summary (on rank 0; ``{}`` on the
    others, which write only their chunks' folders and lines)."""
    names = data.target_names()
    count = math.ceil(len(names) / chunk_size)
    current = problem(model.settings(), names)
    if (run_dir / PLAN).exists() or workers.rank == 0:
        check_plan(
            run_dir, PLAN, "a chunked run", current, chunk_size=chunk_size, targets=len(names)
        )
    done = finished_chunks(run_dir)
    if done:
        rank_zero_info(f"resuming {run_dir}: {len(done)} of {count} chunks finished, skipped")
        _lost_folders(run_dir, done)
    n_f = model.hparams.n_f or next((line["N_f"] for _, line in sorted(done.items())), None)
    if n_f is None:
        n_f = workers.broadcast(
            _first_chunk_n_f(model, data, chunk_size, workers.device) if workers.rank == 0 else None
        )
    where = f" on process {workers.rank}" if workers.world > 1 else ""

    def work(name: str) -> None:
        index = int(name.removeprefix("chunk_"))
        rows = range(index * chunk_size, min((index + 1) * chunk_size, len(names)))
        chunk = data.chunk(rows)
        trainer = trainer_for(logger_for(run_dir / name))
        say_how_to_resume(trainer, run_dir)
        results = fit_piece(
            trainer, run_dir / name, model.with_settings(n_f=n_f), chunk, "a chunked run's Trainers"
        )
        if results is not None:
            append_line(run_dir / RESULTS, {"chunk": index, "steps": results["steps"], "N_f": results["N_f"],
                                            "images": results["images"]})  # fmt: skip
            if workers.world == 1:  # alone, it may read the file while the run goes on
                summarize(run_dir, len(names))
            images = f"{len(rows)} image{'s' if len(rows) != 1 else ''}"
            rank_zero_info(f"chunk {index + 1}/{count} done{where}, {images}{measured(results)}")
        # The chunk's Trainer, module and callbacks refer to each other: free them now, not at
        # some later cycle collection, or several chunks' tensors pile up (1.41× the memory at 224 px).
        del trainer, chunk
        gc.collect()

    deal(run_dir, workers, [chunk_name(index) for index in range(count) if index not in done], work)
    if workers.rank != 0:
        return {}
    # In chunk order, whichever process finished first: the file a one-process run writes.
    lines = finished_chunks(run_dir)
    (run_dir / RESULTS).write_text(
        "".join(json.dumps(lines[index]) + "\n" for index in sorted(lines))
    )
    return summarize(run_dir, len(names))
