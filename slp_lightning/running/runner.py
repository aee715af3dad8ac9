"""What ``fit`` runs, from the command line or from Python: one run, a sweep or a dataset in
chunks, each in a run folder of its own (``run_folders``) with Trainers from a
``TrainerFactory``.

- **one run**: one Trainer; with several devices its processes share the targets
  (``IndependentDDPStrategy``).
- **a sweep** (``Sweep``): a run per job; with several devices the jobs are dealt out
  (``dealing``): each process runs the next unclaimed job alone on its device.
- **chunks**: a dataset larger than ``chunk_size`` targets, a run per chunk, dealt out the same
  way (``chunks``); resumed from the folder given as ``ckpt_path``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from slp_lightning.callbacks import OutputWriter
from slp_lightning.data.targets import TargetImages
from slp_lightning.errors import ArgumentError
from slp_lightning.module.lightning_model import FeatureInversion
from slp_lightning.module.resume import finished
from slp_lightning.outputs.files import remove_unstarted_run
from slp_lightning.outputs.summaries import write_summary
from slp_lightning.running import chunk_sizes, chunks
from slp_lightning.running.dealing import Workers, first_device, launch_workers
from slp_lightning.running.preflight import check_output_root
from slp_lightning.running.reports import chunks_report, sweep_report, trainer_report
from slp_lightning.running.run_folders import claim_run_dir, folder_name, logger_for
from slp_lightning.running.sweep import PLAN as SWEEP_PLAN
from slp_lightning.running.sweep import Sweep
from slp_lightning.running.sweep import run as run_sweep
from slp_lightning.running.trainers import TrainerFactory


@dataclass(frozen=True)
class Outcome:
    """What ``Runner.fit`` produced (on the first process; the others get ``results`` empty).

    Attributes:
        kind: ``"run"``, ``"sweep"`` or ``"chunks"``.
        run_dir: the run folder (``None``: a finished run's resume, which ran nothing).
        results: a run's ``results.json`` (``None`` when nothing ran); a sweep's ``summary.csv``
            rows, one dict per job; a chunked run's ``summary.json`` (means over every image).
        report: the lines printed at its end (``outputs.report``).
    """

    kind: str
    run_dir: Path | None
    results: dict | list[dict] | None
    report: str | None


def _is_dir(path: str | Path | None) -> bool:
    return path is not None and Path(path).is_dir()


def _show(lines: str | None) -> str | None:
    if lines:
        print(lines, flush=True)
    return lines


class Runner:
    """Runs ``fit`` as the command line does (``Runner().fit(model, data)`` from Python).

    Args:
        trainers: the Trainers' settings and callbacks (default: the command line's defaults).
        sweep: the axes of a sweep; ``None`` or an empty ``Sweep`` for one run.
        save_config: writes the run's config into the run folder it is given (the command line
            saves its ``config.yaml``); called on the first process, before anything runs.
    """

    def __init__(
        self, trainers: TrainerFactory | None = None, sweep: Sweep | None = None,
        save_config: Callable[[Path], None] | None = None,
    ) -> None:  # fmt: skip
        self.trainers = trainers or TrainerFactory()
        self.sweep = sweep if sweep else None
        self.save_config = save_config
        self._trainer: Trainer | None = None  # the newest Trainer: its report on an error

    def fit(
        self, model: FeatureInversion, datamodule: LightningDataModule, ckpt_path: str | Path | None = None
    ) -> Outcome:  # fmt: skip
        """One run, the sweep, or the targets in chunks, and then their report (printed). A
        ``ckpt_path`` file resumes one run (a finished one: nothing runs, nor is a run folder
        made), a folder a sweep or a chunked run (their finished jobs or chunks are skipped)."""
        check_output_root(self.trainers.root)  # before any folder is made
        ckpt_path = None if ckpt_path is None else str(ckpt_path)
        size = self.chunk_size(model, datamodule, ckpt_path)
        if self.sweep:
            if size is not None and len(datamodule.target_names()) > size:
                raise ArgumentError(
                    "a sweep cannot run in chunks: give chunk_size to single runs",
                    "TargetImages.chunk_size",
                )
            if ckpt_path is not None and not _is_dir(ckpt_path):
                raise ArgumentError(
                    f"{ckpt_path} is a checkpoint file: a sweep resumes from its folder, e.g. "
                    f"logs/{model.hparams.network}_sweep/version_0",
                    "Runner.ckpt_path",
                )
            return self._sweep(model, datamodule, ckpt_path)
        if size is not None and (_is_dir(ckpt_path) or len(datamodule.target_names()) > size):
            return self._chunks(model, datamodule, size, ckpt_path)
        return self._single(model, datamodule, ckpt_path)

    def chunk_size(
        self, model: FeatureInversion, data: LightningDataModule, ckpt_path: str | None
    ) -> int | None:
        """``data.chunk_size`` resolved: a resumed chunked run's own; ``auto``: sized for the
        device (``chunk_sizes.auto_chunk_size``), and no chunks for a sweep or a resumed single run."""
        if not isinstance(data, TargetImages):
            return None
        if self.sweep:  # never chunked: only a size given by hand is checked against the targets
            return data.chunk_size if isinstance(data.chunk_size, int) else None
        if _is_dir(ckpt_path):
            return chunks.planned_chunk_size(Path(ckpt_path), data.chunk_size)
        if data.chunk_size == "auto":
            if self.sweep or ckpt_path:
                return None
            accelerator, devices, _ = self.trainers.processes
            return chunk_sizes.auto_chunk_size(model, first_device(accelerator, devices))
        if ckpt_path and data.chunked():
            raise ValueError(f"{ckpt_path} is a checkpoint file: a chunked run resumes from its folder, "
                             f"e.g. logs/<network>_<layer>_chunks/version_0")  # fmt: skip
        return data.chunk_size

    def _new_run_dir(self, name: str) -> Path:
        """A claimed run folder, with the config saved in it."""
        run_dir = claim_run_dir(self.trainers.root, name)
        if self.save_config is not None:
            self.save_config(run_dir)
        return run_dir

    def _shared_run_dir(self, name: str, workers: Workers, resumed: str | None = None) -> Path:
        """A run folder claimed by the first of ``workers`` and sent to the others (or the
        ``resumed`` one, its config saved again)."""
        if resumed is None:
            return workers.broadcast(self._new_run_dir(name) if workers.rank == 0 else None)
        if workers.rank == 0 and self.save_config is not None:
            self.save_config(Path(resumed))
        return Path(resumed)

    def _trainer_for(self, workers: Workers) -> Callable[[Logger], Trainer]:
        """The Trainer of each job or chunk: on this worker's device when work is dealt."""

        def trainer_for(logger: Logger) -> Trainer:
            self._trainer = self.trainers(logger, worker=workers if workers.world > 1 else None)
            return self._trainer

        return trainer_for

    def _single(
        self, model: FeatureInversion, data: LightningDataModule, ckpt_path: str | None
    ) -> Outcome:
        message = finished(ckpt_path, self.trainers.max_steps) if ckpt_path is not None else None
        if message:
            if rank_zero_only.rank == 0:
                print(message)
            return Outcome("run", None, None, message)
        name = f"{model.network.name}_{model.network.layer}"
        # Only the first process claims: Lightning sends its log and checkpoint folders to the
        # processes it launches, whose loggers' own guesses are never used.
        first = rank_zero_only.rank == 0 and self.trainers.own_logger()
        run_dir = self._new_run_dir(name) if first else None
        trainer = None
        try:
            logger = (
                logger_for(run_dir)
                if run_dir
                else TensorBoardLogger(
                    self.trainers.root, name=folder_name(name), default_hp_metric=False
                )
            )
            trainer = self.trainers(logger)
            # Explicit: torch's default yields to TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, and
            # Lightning reads a URL with weights_only=False unless told.
            trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
        except BaseException:
            if run_dir is not None:
                remove_unstarted_run(run_dir)
            _show(trainer_report(trainer))  # what was reached (Ctrl-C, SIGTERM, an error)
            raise
        lines = _show(trainer_report(trainer))
        writer = next(c for c in trainer.callbacks if isinstance(c, OutputWriter))
        return Outcome("run", run_dir, writer.results, lines)

    def _dealt(self, run: Callable[[Workers], tuple[Path, object]]) -> tuple[Workers, Path, object]:
        """``run(workers)`` on this run's workers, printing the report of the job or chunk that
        was running when it stops on an error or a signal."""
        workers = launch_workers(*self.trainers.processes)
        self._trainer = None
        try:
            return workers, *run(workers)
        except BaseException:
            if workers.rank == 0:  # each worker's piece is a one-process run: one report
                _show(trainer_report(self._trainer))
            raise

    def _sweep(
        self, model: FeatureInversion, data: LightningDataModule, ckpt_path: str | None
    ) -> Outcome:
        name = "sweep" if self.sweep.networks else f"{model.hparams.network}_sweep"

        def run(workers: Workers) -> tuple[Path, list[dict]]:
            run_dir = self._shared_run_dir(name, workers, ckpt_path)
            try:
                return run_dir, run_sweep(
                    self.sweep, model, data, self._trainer_for(workers), run_dir, workers
                )
            except BaseException:
                if workers.rank == 0 and ckpt_path is None:
                    remove_unstarted_run(
                        run_dir, SWEEP_PLAN
                    )  # a sweep refused before its first job
                raise

        workers, run_dir, rows = self._dealt(run)
        if workers.rank != 0:
            return Outcome("sweep", run_dir, [], None)
        lines = _show(sweep_report(rows, run_dir, write_summary(rows, run_dir)))
        return Outcome("sweep", run_dir, rows, lines)

    def _chunks(
        self, model: FeatureInversion, data: TargetImages, size: int, ckpt_path: str | None
    ) -> Outcome:
        network = model.network

        def run(workers: Workers) -> tuple[Path, dict]:
            run_dir = self._shared_run_dir(
                f"{network.name}_{network.layer}_chunks", workers, ckpt_path
            )
            return run_dir, chunks.run(
                model, data, size, self._trainer_for(workers), run_dir, workers
            )

        workers, run_dir, summary = self._dealt(run)
        if workers.rank != 0:
            return Outcome("chunks", run_dir, {}, None)
        lines = _show(chunks_report(summary, run_dir))
        return Outcome("chunks", run_dir, summary, lines)
