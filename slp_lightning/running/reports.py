"""The lines a run, a sweep or a chunked run prints at its end (``outputs.report`` for each)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer

from slp_lightning.callbacks import OutputWriter
from slp_lightning.outputs.files import report
from slp_lightning.running import chunks


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def trainer_report(trainer: Trainer | None) -> str | None:
    """What ``trainer``'s run produced (``OutputWriter.report``), on its first process, once its
    results are written (also after Ctrl-C, SIGTERM or an error); else ``None``."""
    writer = (
        next((c for c in trainer.callbacks if isinstance(c, OutputWriter)), None)
        if trainer
        else None
    )
    return writer.report() if writer is not None and trainer.is_global_zero else None  # fmt: skip


def sweep_report(rows: list[dict], run_dir: Path, summary_files: list[Path]) -> str:
    """A sweep's best job and where its summary (``summary_files``: csv, md, png) and jobs are."""
    csv, table, *plots = summary_files
    if all(row.get("mean_normalized_error") is not None for row in rows):
        best = min(rows, key=lambda row: row["mean_normalized_error"])
    else:  # visualisations: the highest activation
        best = max(rows, key=lambda row: row.get("mean_activation") or float("-inf"))
    files = {
        "summary": f"{table} (and {', '.join(p.name for p in [csv, *plots])})",
        "jobs": f"{run_dir} (a folder per job: reconstructions, sheet.png, results.json each)",
    }
    headline = f"sweep of {_count(len(rows), 'job')}, the best {best['job']}"
    return report(headline, best, files, run_dir)


def chunks_report(summary: dict, run_dir: Path) -> str:
    """A chunked run's means over every image, and where its files and chunks are."""
    names = [chunks.chunk_name(index) for index in sorted(chunks.finished_chunks(run_dir))]
    span = " … ".join(dict.fromkeys(names[:1] + names[-1:]))  # chunk_0000 … chunk_0041
    files = {
        "summary": run_dir / chunks.SUMMARY,
        "results": run_dir / chunks.RESULTS,
        "chunks": f"{run_dir} ({span}: reconstructions, sheet.png, results.json each)",
    }
    headline = f"{summary['images']} images in {_count(len(names), 'chunk')}"
    return report(headline, summary, files, run_dir)
