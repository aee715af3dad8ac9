"""Command line: ``python -m slp_lightning fit --config configs/alexnet_conv5.yaml``."""

from __future__ import annotations

import copy
import os
import re
import sys
from functools import partial
from pathlib import Path
from typing import Any

from jsonargparse import ActionYesNo
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning import quiet
from slp_lightning.callbacks import InversionCheckpoint, OutputWriter, PyramidSwitch, SemanticScore
from slp_lightning.chunks import auto_chunk_size, chunk_name, finished_chunks, planned_chunk_size
from slp_lightning.chunks import run as run_chunks
from slp_lightning.config_files import with_shipped_configs
from slp_lightning.data import TargetImages
from slp_lightning.distributed import (
    IndependentDDPStrategy,
    Workers,
    launch_workers,
    needs_processes,
)
from slp_lightning.exits import errors_as_one_line, signal_exit_codes
from slp_lightning.lightning_model import FeatureInversion
from slp_lightning.networks import LAYER_OPTIONS, layer_listing
from slp_lightning.outputs import remove_unstarted_run, report, write_summary
from slp_lightning.resume import finished
from slp_lightning.sweep import Sweep
from slp_lightning.sweep import run as run_sweep

CALLBACK_KEYS = ("switch", "outputs", "eval", "checkpoint")
# The command line's group of each class whose arguments an ``errors.ArgumentError`` names.
FLAG_GROUPS = {
    "FeatureInversion": "model", "TargetImages": "data", "PyramidSwitch": "switch", "OutputWriter": "outputs",
    "SemanticScore": "eval", "InversionCheckpoint": "checkpoint", "Sweep": "sweep", "Trainer": "trainer",
}  # fmt: skip
CONSOLE_SCRIPT = "slp-lightning"  # pyproject.toml's [project.scripts]
# Every process of a multi-device sweep or chunked run must write into the same folder: the
# first process picks its version and the processes it launches inherit it through the environment.
RUN_VERSION_ENV = "SLP_LIGHTNING_RUN_VERSION"


def folder_name(name: str) -> str:
    """``name`` as one folder name: a model's spec (``pkg/file.py:Net``) has separators."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "model"


def _is_dir(path: str | None) -> bool:
    return path is not None and Path(path).is_dir()


class InversionCLI(LightningCLI):
    """LightningCLI with the method's callbacks always on and outputs under ``logs/``.

    With several devices or nodes and ``--trainer.strategy auto``, the strategy is
    ``IndependentDDPStrategy``: every process inverts its own share of the targets. A config with
    a ``sweep`` section makes ``fit`` run every job of the sweep and write its summary.
    """

    _job: Trainer | None = None  # the newest Trainer of a sweep's job or a chunk

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PyramidSwitch, "switch")
        parser.add_lightning_class_args(OutputWriter, "outputs")
        parser.add_lightning_class_args(SemanticScore, "eval")
        parser.add_lightning_class_args(InversionCheckpoint, "checkpoint")
        parser.add_class_arguments(Sweep, "sweep")
        parser.add_argument(
            "--verbose", action=ActionYesNo, default=False,
            help="Also show the messages of Lightning that cannot apply to an inversion (slp_lightning/quiet.py) "
            "and the model summary",
        )  # fmt: skip
        parser.set_defaults(
            {
                "checkpoint.every_n_train_steps": 100,
                "checkpoint.save_last": True,
                "checkpoint.save_on_exception": True,
                "trainer.default_root_dir": "logs",
                "trainer.max_steps": 1000,
                "trainer.log_every_n_steps": 10,
            }
        )
        # The model knows its network's input size once built (a user's model included).
        parser.link_arguments("model.image_size", "data.image_size", apply_on="instantiate")

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``: an inversion has no validation, test or predict step to run. Without
        ``--weights_only``: checkpoints are always read as tensors only (``fit``)."""
        return {"fit": LightningCLI.subcommands()["fit"] | {"weights_only"}}

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """LightningCLI's parsing, with ``--config NAME`` finding a shipped config by name."""
        if args is None or isinstance(args, list):
            self.config = parser.parse_args(
                with_shipped_configs(sys.argv[1:] if args is None else args)
            )
        else:
            super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Keep the command line's settings. LightningCLI would copy the checkpoint's model
        settings over them, so that ``--model.image_size 72`` silently resumed at 64;
        ``FeatureInversion.on_load_checkpoint`` instead refuses a checkpoint of other settings or
        images and lists the differences."""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.model.layer == "list":
            print_layers(config.model)
            sys.exit(0)
        max_steps = config.trainer.max_steps
        if max_steps == 0 or max_steps < -1:
            raise ValueError(
                f"--trainer.max_steps must be a number of steps >= 1, or -1 for no limit (the run "
                f"then stops when every image has converged); got {max_steps}"
            )
        if not config.verbose:
            quiet.silence_lightning()

    def _quiet_settings(self, config: dict) -> dict[str, Any]:
        """Trainer settings resolved at its creation (``config.yaml`` keeps what was asked): no
        model summary unless asked or ``--verbose`` (its table is the frozen network and
        ``I_pre``); a logging interval no longer than the run, which would otherwise log no
        scalars (and Lightning would say so)."""
        settings = {}
        if config.get("enable_model_summary") is None:
            settings["enable_model_summary"] = bool(
                self._get(self.config_init, "verbose", default=False)
            )
        max_steps, interval = config.get("max_steps", -1), config.get("log_every_n_steps")
        if (
            max_steps is not None
            and max_steps > 0
            and isinstance(interval, int)
            and interval > max_steps
        ):
            settings["log_every_n_steps"] = max_steps
        return settings

    @staticmethod
    def _strategy(config: dict) -> dict[str, Any]:
        """Several devices with ``strategy: auto`` get the independent-images DDP strategy."""
        if config.get("strategy", "auto") == "auto" and needs_processes(
            config.get("accelerator", "auto"),
            config.get("devices", "auto"),
            config.get("num_nodes", 1),
        ):
            return {"strategy": IndependentDDPStrategy()}
        return {}

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            # Runs land in <default_root_dir>/<network>_<layer>/version_<n>/.
            network = self.model.network
            kwargs["logger"] = TensorBoardLogger(
                save_dir=config.get("default_root_dir") or "logs",
                name=folder_name(f"{network.name}_{network.layer}"),
            )
        # Pristine copies of the callbacks, for the fresh Trainer of every job of a sweep.
        self._callbacks = [copy.deepcopy(self._get(self.config_init, key)) for key in CALLBACK_KEYS]
        return super().instantiate_trainer(
            **kwargs, **self._strategy(config), **self._quiet_settings(config)
        )

    def fit(
        self, model: FeatureInversion, datamodule: LightningDataModule, ckpt_path: str | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        """``Trainer.fit``, or every job of the config's sweep; nothing (and no new run folder)
        when ``ckpt_path`` is a finished run."""
        sweep = self._get(self.config_init, "sweep")
        if isinstance(datamodule, TargetImages):
            datamodule.chunk_size = self._chunk_size(model, datamodule, ckpt_path, sweep)
        if isinstance(datamodule, TargetImages) and (datamodule.chunked() or _is_dir(ckpt_path)):
            if sweep:
                raise ValueError(
                    "a sweep cannot run in chunks: give --data.chunk_size to single runs"
                )
            self._run_chunks(model, datamodule, ckpt_path)
            return
        if not sweep:
            message = finished(ckpt_path, self.trainer.max_steps) if ckpt_path is not None else None
            if message:
                if self.trainer.is_global_zero:
                    print(message)
                return
            try:
                # Explicit: torch's default yields to TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, and
                # Lightning reads a URL with weights_only=False unless told.
                self.trainer.fit(
                    model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs
                )
            except BaseException:
                logger = self.trainer.logger
                if self.trainer.is_global_zero and isinstance(logger, TensorBoardLogger):
                    remove_unstarted_run(Path(logger.log_dir))
                self._print_report(self.trainer)  # what was reached (Ctrl-C, SIGTERM, an error)
                raise
            self._print_report(self.trainer)
            return
        if ckpt_path is not None:
            raise ValueError(
                "a sweep cannot resume from one checkpoint: resume its jobs one by one"
            )
        self._run_sweep(sweep, model, datamodule)

    def _chunk_size(
        self,
        model: FeatureInversion,
        data: TargetImages,
        ckpt_path: str | None,
        sweep: Sweep | None,
    ) -> int | None:
        """``--data.chunk_size`` resolved: a resumed chunked run's own; ``auto``: sized for the
        device (``chunks.auto_chunk_size``), and no chunks for a sweep."""
        if _is_dir(ckpt_path):
            return planned_chunk_size(Path(ckpt_path), data.chunk_size)
        if data.chunk_size == "auto":
            # A single run resumed from its checkpoint stays a single run.
            return (
                None
                if sweep or ckpt_path
                else auto_chunk_size(model, self.trainer.strategy.root_device)
            )
        if ckpt_path and data.chunked():
            raise ValueError(f"{ckpt_path} is a checkpoint file: a chunked run resumes from its folder, "
                             f"e.g. logs/<network>_<layer>_chunks/version_0")  # fmt: skip
        return data.chunk_size

    def _job_trainer(self, logger: TensorBoardLogger, worker: Workers | None = None) -> Trainer:
        """A fresh Trainer with the command line's settings; for a ``worker`` of a dealt chunked
        run, a one-device Trainer on its device (with a progress bar on rank 0 only)."""
        config = dict(self._get(self.config_init, "trainer", default={}))
        user_callbacks = copy.deepcopy(config.get("callbacks") or [])
        config.update(callbacks=[*copy.deepcopy(self._callbacks), *user_callbacks])
        if config.get("logger") in (None, True):
            config["logger"] = logger
        if worker is not None:
            device = worker.device
            config.update(
                accelerator="gpu" if device.type == "cuda" else device.type, num_nodes=1, strategy="auto",
                devices=[device.index] if device.type == "cuda" else 1,
                enable_progress_bar=config.get("enable_progress_bar", True) is not False and worker.rank == 0,
            )  # fmt: skip
        self._job = Trainer(**{**config, **self._strategy(config), **self._quiet_settings(config)})
        return self._job

    def _print_report(self, trainer: Trainer | None) -> None:
        """Print what ``trainer``'s run produced (``OutputWriter.report``), on the first process
        of its run, once its results are written (also after Ctrl-C, SIGTERM or an error)."""
        writer = (
            next((c for c in trainer.callbacks if isinstance(c, OutputWriter)), None)
            if trainer
            else None
        )
        lines = writer.report() if writer is not None and trainer.is_global_zero else None
        if lines:
            print(lines, flush=True)

    def _workers(self) -> Workers:
        """One process per device of the command line's Trainer settings, launched now."""
        config = self._get(self.config_init, "trainer", default={})
        settings = (
            config.get("accelerator", "auto"),
            config.get("devices", "auto"),
            config.get("num_nodes", 1),
        )
        if needs_processes(*settings):
            return launch_workers(*settings)
        return Workers(device=self.trainer.strategy.root_device)

    def _new_run_dir(self, name: str) -> Path:
        """``<default_root_dir>/<name>/version_<n>``, the same folder on every process."""
        root = Path(self.trainer.default_root_dir) / folder_name(name)
        versions = [
            int(p.name.split("_")[1])
            for p in root.glob("version_*")
            if p.name.split("_")[1].isdigit()
        ]
        return (
            root
            / f"version_{os.environ.setdefault(RUN_VERSION_ENV, str(max(versions, default=-1) + 1))}"
        )

    def _run_chunks(
        self, model: FeatureInversion, datamodule: TargetImages, ckpt_path: str | None
    ) -> None:
        network = model.network
        run_dir = (
            Path(ckpt_path)
            if ckpt_path
            else self._new_run_dir(f"{network.name}_{network.layer}_chunks")
        )
        workers = self._workers()
        trainer_for = (
            self._job_trainer if workers.world == 1 else partial(self._job_trainer, worker=workers)
        )
        self._job = None
        try:
            summary = run_chunks(model, datamodule, trainer_for, run_dir, workers)
        except BaseException:
            if (
                workers.rank == 0
            ):  # every worker's chunk is a one-process run: only the first reports
                self._print_report(self._job)  # the chunk that was running
            raise
        if workers.rank == 0:
            self._parser(self.subcommand).save(
                self.config[self.subcommand], run_dir / "config.yaml",
                skip_none=False, overwrite=True, multifile=False,
            )  # fmt: skip
            chunks = [chunk_name(index) for index in sorted(finished_chunks(run_dir))]
            span = " … ".join(dict.fromkeys(chunks[:1] + chunks[-1:]))  # chunk_0000 … chunk_0041
            files = {
                "summary": run_dir / "summary.json",
                "results": run_dir / "results.jsonl",
                "chunks": f"{run_dir} ({span}: reconstructions, sheet.png, results.json each)",
            }
            headline = f"{summary['images']} images in {len(chunks)} chunk{'s' if len(chunks) != 1 else ''}"
            print(report(headline, summary, files, run_dir), flush=True)

    def _run_sweep(
        self, sweep: Sweep, model: FeatureInversion, datamodule: LightningDataModule
    ) -> None:
        network = model.hparams.network
        run_dir = self._new_run_dir("sweep" if sweep.networks else f"{network}_sweep")
        self._job = None
        try:
            rows = run_sweep(sweep, model, datamodule, self._job_trainer, run_dir)
        except BaseException:
            self._print_report(self._job)  # the job that was running
            raise
        if self.trainer.is_global_zero:
            self._parser(self.subcommand).save(
                self.config[self.subcommand], run_dir / "config.yaml",
                skip_none=False, overwrite=True, multifile=False,
            )  # fmt: skip
            csv, table, plot = write_summary(rows, run_dir)
            best = min(rows, key=lambda row: row["mean_normalized_error"])
            files = {
                "summary": f"{table} (and {csv.name}, {plot.name})",
                "jobs": f"{run_dir} (a folder per job: reconstructions, sheet.png, results.json each)",
            }
            headline = (
                f"sweep of {len(rows)} job{'s' if len(rows) != 1 else ''}, the best {best['job']}"
            )
            print(report(headline, best, files, run_dir), flush=True)


def print_layers(model: Any) -> None:
    """``--model.layer list``: every layer of the network with its output shape at the run's
    image size, in execution order."""
    options = {k: model.get(k) for k in LAYER_OPTIONS if model.get(k) is not None}
    rows = layer_listing(model.network, model.image_size, model.arch, **options)
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {shape}" for name, shape in rows))


def main(args: list[str] | None = None) -> InversionCLI:
    """Run the CLI; ``args`` lets tests call it in-process (``None`` reads ``sys.argv``).
    Errors are raised, as from any Python function; ``command`` is the command line's. Lightning's
    messages that cannot apply are silenced (``quiet``) for the run, unless ``--verbose``."""
    with quiet.restored():
        return InversionCLI(
            FeatureInversion,
            TargetImages,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"prog": _program()},
            args=args,
        )


def _program() -> str:
    """The name usage and errors give the program: how it was started."""
    return CONSOLE_SCRIPT if Path(sys.argv[0]).name == CONSOLE_SCRIPT else "python -m slp_lightning"


def command(args: list[str] | None = None) -> None:
    """``python -m slp_lightning``: ``main``, with user errors and a lost process as one line
    (exit 2, exit 1), and a run stopped by SIGINT or SIGTERM exiting 130 or 143 after saving
    (``exits``)."""
    with signal_exit_codes(), errors_as_one_line(flag):
        main(args)


def flag(argument: str) -> str:
    """The flag of a qualified argument name: ``FeatureInversion.image_size`` ->
    ``--model.image_size``."""
    owner, name = argument.rsplit(".", 1)
    return f"--{FLAG_GROUPS[owner]}.{name}" if owner in FLAG_GROUPS else name
