"""Checkpoints whose ``last.ckpt`` always holds the newest state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

from slp_lightning.callbacks.switch import SwitchListener
from slp_lightning.errors import check_range
from slp_lightning.module.resume import CONFIG, resume_command


class InversionCheckpoint(ModelCheckpoint, SwitchListener):
    """``ModelCheckpoint`` whose ``last.ckpt`` always holds the newest state.

    ``ModelCheckpoint`` refreshes ``last.ckpt`` with its step checkpoints and on an exception
    (here: of a single-process run, see ``on_exception``); this one also refreshes it at every
    level switch and at the end of the run, through
    ``ModelCheckpoint``'s own bookkeeping (a file written behind its back would make it save its
    next "last" as ``last-v1.ckpt``).

    Args:
        on_switch: refresh ``last.ckpt`` at every level switch (of any image, on any process);
            needs ``save_last``.
        **kwargs: ``ModelCheckpoint``'s arguments.

    Attributes:
        resume_from: what the command printed on a stop resumes from (``None``: the
            ``last.ckpt`` written). A sweep or a chunked run resumes from its run folder, never
            from a job's or a chunk's own ``last.ckpt``: ``pieces.say_how_to_resume`` sets it on
            their Trainers (not an argument, which the command line would offer as a flag).
    """

    def __init__(self, on_switch: bool = True, **kwargs: Any) -> None:
        for key, low in [("every_n_train_steps", 0), ("every_n_epochs", 0), ("save_top_k", -1)]:
            check_range(kwargs.get(key), f"InversionCheckpoint.{key}", low=low, integer=True)
        super().__init__(**kwargs)
        self.on_switch = on_switch
        self.resume_from: str | Path | None = None
        self._switched = False

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        """Save ``last.ckpt`` unless this step is saved already (every process must call)."""
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_pyramid_switch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Saved at this step's end, after ModelCheckpoint's own step save (Lightning runs
        # checkpoint callbacks last), which a save from here would otherwise skip.
        self._switched = self.on_switch

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._switched:
            self._refresh_last(trainer)
            self._switched = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # ModelCheckpoint saves at the end only when the last step was a step checkpoint's.
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # With several processes the others may be gone or at another step: a save would wait
        # for them at a barrier (and hang, or fail with an error that hides this one) and could
        # hold only this process's images. Such a run resumes from last.ckpt as it stands.
        if trainer.world_size == 1 and self._should_save_on_exception(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_checkpoint(trainer, self.format_checkpoint_name(candidates))
            self._save_last_checkpoint(trainer, candidates)
        if self.last_model_path:
            resume_from = Path(self.resume_from or self.last_model_path)
            # The run's folder: the sweep's or chunked run's own, or the one of this last.ckpt.
            run_dir = resume_from if self.resume_from else resume_from.parent.parent
            command = resume_command(resume_from, run_dir / CONFIG)
            rank_zero_info(f"stopped at step {trainer.global_step}; resume with: {command}")
