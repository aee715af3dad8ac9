"""The Trainers of a run: the command line's settings and callbacks, a fresh Trainer per run,
job or chunk (``TrainerFactory``)."""

from __future__ import annotations

import copy
from typing import Any

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import Logger

from slp_lightning.callbacks import (
    InversionCheckpoint,
    OutputWriter,
    PyramidSwitch,
    SemanticScore,
    StepProgressBar,
)
from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.module.distributed import IndependentDDPStrategy
from slp_lightning.running.dealing import Workers, needs_processes

# The command line's defaults where they are not the classes' own (``cli`` sets them on its parser).
TRAINER_DEFAULTS = {"default_root_dir": "logs", "max_steps": 1000, "log_every_n_steps": 10}
CHECKPOINT_DEFAULTS = {"every_n_train_steps": 100, "save_last": True, "save_on_exception": True}


def default_callbacks() -> list[Callback]:
    """The method's callbacks as the command line configures them by default."""
    return [PyramidSwitch(), OutputWriter(), SemanticScore(), InversionCheckpoint(**CHECKPOINT_DEFAULTS)]  # fmt: skip


class TrainerFactory:
    """Fresh Trainers with one run's settings: every Trainer gets pristine copies of
    ``callbacks`` (a run's callbacks keep state) and the logger it is given.

    With several devices or nodes and ``strategy: auto``, the strategy is
    ``IndependentDDPStrategy`` (every process inverts its own share of the targets). A Trainer for
    a ``Workers`` process runs on that process's device alone, with a progress bar on rank 0 only.

    Args:
        settings: ``Trainer`` arguments (the command line's ``trainer`` group); ``TRAINER_DEFAULTS``
            where not given.
        callbacks: the callbacks of every Trainer (``default_callbacks()`` when ``None``), before
            those of ``settings["callbacks"]``.
        verbose: show the model summary unless ``enable_model_summary`` says otherwise.
    """

    def __init__(
        self, settings: dict[str, Any] | None = None, callbacks: list[Callback] | None = None,
        verbose: bool = False,
    ) -> None:  # fmt: skip
        self.settings = {**TRAINER_DEFAULTS, **(settings or {})}
        max_steps = self.settings["max_steps"]
        if max_steps is None or max_steps == 0 or max_steps < -1:
            raise ArgumentError(
                f"max_steps must be a number of steps >= 1, or -1 for no limit (the run then "
                f"stops when every image has converged); got {max_steps}",
                "Trainer.max_steps",
            )
        for key, low in [("log_every_n_steps", 1), ("num_nodes", 1), ("min_steps", 0)]:
            check_range(self.settings.get(key), f"Trainer.{key}", low=low, integer=True)
        check_range(self.settings.get("gradient_clip_val"), "Trainer.gradient_clip_val", low=0)
        if self.settings.get("accumulate_grad_batches", 1) != 1:
            raise ArgumentError(
                "accumulate_grad_batches must be 1: each tick of an inversion is one step of "
                f"I_pre; got {self.settings['accumulate_grad_batches']!r}",
                "Trainer.accumulate_grad_batches",
            )
        self.callbacks = default_callbacks() if callbacks is None else callbacks
        self.verbose = verbose

    @property
    def root(self) -> str:
        """Where runs go: ``default_root_dir``."""
        return self.settings["default_root_dir"] or "logs"

    @property
    def max_steps(self) -> int:
        return self.settings["max_steps"]

    @property
    def processes(self) -> tuple[Any, Any, int]:
        """``accelerator``, ``devices`` and ``num_nodes``: what decides the processes of a run."""
        get = self.settings.get
        return get("accelerator", "auto"), get("devices", "auto"), get("num_nodes", 1)

    def own_logger(self) -> bool:
        """Whether the Trainers log to the run folder (no logger of the user's own)."""
        return self.settings.get("logger") in (None, True)

    def __call__(self, logger: Logger, worker: Workers | None = None) -> Trainer:
        """A Trainer logging to ``logger`` (unless the settings name a logger of their own); on
        ``worker``'s device alone when given."""
        config = dict(self.settings)
        user_callbacks = copy.deepcopy(config.get("callbacks") or [])
        config["callbacks"] = [*copy.deepcopy(self.callbacks), *user_callbacks]
        if self.own_logger():
            config["logger"] = logger
        if worker is not None:
            device = worker.device
            config.update(
                accelerator="gpu" if device.type == "cuda" else device.type, num_nodes=1, strategy="auto",
                devices=[device.index] if device.type == "cuda" else 1,
                enable_progress_bar=config.get("enable_progress_bar", True) is not False and worker.rank == 0,
            )  # fmt: skip
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(callback, ProgressBar) for callback in config["callbacks"]
        ):
            config["callbacks"].append(StepProgressBar())  # steps and levels, not epochs
        return Trainer(**{**config, **self._strategy(config), **self._quiet(config)})

    @staticmethod
    def _strategy(config: dict[str, Any]) -> dict[str, Any]:
        """Several devices with ``strategy: auto`` get the independent-images DDP strategy."""
        if config.get("strategy", "auto") == "auto" and needs_processes(
            config.get("accelerator", "auto"), config.get("devices", "auto"), config.get("num_nodes", 1)
        ):  # fmt: skip
            return {"strategy": IndependentDDPStrategy()}
        return {}

    def _quiet(self, config: dict[str, Any]) -> dict[str, Any]:
        """No model summary unless asked or ``verbose`` (its table is the frozen network and
        ``I_pre``); a logging interval no longer than the run, which would otherwise log no
        scalars (and Lightning would say so). ``config.yaml`` keeps what was asked."""
        settings: dict[str, Any] = {}
        if config.get("enable_model_summary") is None:
            settings["enable_model_summary"] = self.verbose
        max_steps, interval = config.get("max_steps", -1), config.get("log_every_n_steps")
        if max_steps > 0 and isinstance(interval, int) and interval > max_steps:
            settings["log_every_n_steps"] = max_steps
        return settings
