"""Pieces of a larger run: a sweep's jobs and a dataset's chunks. Each piece is a run of its own
in a folder of the run's folder (results, PNGs, checkpoints, TensorBoard), and the run's folder
resumes them all: its plan file holds the problem the resume must match, its lines file a line
per finished piece, and an unfinished piece goes on from its ``last.ckpt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer

from slp_lightning.callbacks import InversionCheckpoint, output_writer
from slp_lightning.errors import ArgumentError
from slp_lightning.module.resume import read_checkpoint


def problem(settings: dict[str, Any], names: list[str], **more: Any) -> dict[str, Any]:
    """What a resume of a run of pieces must match: the ``settings`` that define its problem (as
    a checkpoint's fingerprint has them), its targets (their number and a hash of their names;
    the pixels are each piece's checkpoint's to check: a hash of them would read the dataset) and
    ``more`` (a sweep's axes), as JSON gives them back."""
    current = {
        **settings,
        **more,
        "targets": len(names),
        "names": hashlib.sha256("\n".join(names).encode()).hexdigest()[:16],
    }
    return json.loads(json.dumps(current, default=str))


def check_plan(run_dir: Path, plan: str, kind: str, current: dict, **fields: Any) -> dict | None:
    """Start ``run_dir/plan`` (the problem ``current`` and ``fields``), or, when it is there
    (a resume), refuse another problem than the one it was started with; returns the saved plan
    (``None`` when new). Written whole, then moved into place: other processes may read it."""
    path = run_dir / plan
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        partial = run_dir / f"{plan}.partial"
        partial.write_text(json.dumps({**fields, "problem": current}) + "\n")
        partial.replace(path)
        return None
    saved = json.loads(path.read_text())
    old = saved.get("problem")
    if old is None:
        return saved  # a run from before its plan held its problem
    found = [
        "the targets have other names" if key == "names"
        else f"{key}: {old.get(key)!r} (that run) vs {value!r} (this run)"
        for key, value in current.items() if old.get(key) != value
    ]  # fmt: skip
    if found:
        raise ArgumentError(
            f"cannot resume {run_dir}: it is {kind} of another problem ({'; '.join(found)}); "
            f"resume it with its settings and targets, or drop ckpt_path to start a new run",
            "Runner.ckpt_path",
        )
    return saved


def append_line(path: Path, line: dict) -> None:
    """Add a finished piece's line to ``path`` in one write, so that processes appending at the
    same time never interleave."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (json.dumps(line) + "\n").encode())
    finally:
        os.close(descriptor)


def read_lines(path: Path) -> list[dict]:
    """Every line ``append_line`` wrote to ``path`` (none when there is no such file)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _finished_results(folder: Path, step: int) -> dict | None:
    """The ``results.json`` of a piece whose run ended at ``step``, if it wrote one."""
    path = folder / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    return results if results.get("status") == "finished" and results.get("steps") == step else None


def say_how_to_resume(trainer: Trainer, run_dir: Path) -> None:
    """Make a piece's stop say to resume the whole run's folder ``run_dir``: a piece's own
    ``last.ckpt`` is no ``ckpt_path`` of a sweep or of a chunked run."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, InversionCheckpoint):
            callback.resume_from = run_dir


def fit_piece(
    trainer: Trainer, folder: Path, model: LightningModule, datamodule: LightningDataModule,
    needed_by: str,
) -> dict | None:  # fmt: skip
    """Fit ``model`` with ``trainer`` (logging into ``folder``, which needs an ``OutputWriter``),
    going on from ``folder``'s ``last.ckpt`` when it has one. A piece whose checkpoint reached the
    step budget is not run again: its ``results.json`` counts (its line was lost), or, without
    one, the folder is emptied and the piece runs again from its seed. Returns the results
    (``results.json``'s) on the first process, ``None`` on the others; ``needed_by`` names the
    run in the error for a Trainer without an ``OutputWriter``."""
    writer = output_writer(trainer, needed_by)
    last = folder / "checkpoints" / "last.ckpt"
    # Read first: a file that needs pickle is refused in a sentence, not a traceback.
    step = read_checkpoint(last).get("global_step", 0) if last.exists() else None
    if step is not None and 0 < trainer.max_steps <= step:
        results = _finished_results(folder, step)
        if results is not None:
            return results if trainer.is_global_zero else None
        shutil.rmtree(folder)
        step = None
    ckpt_path = None if step is None else last
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return writer.results if trainer.is_global_zero else None
