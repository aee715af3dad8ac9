"""The progress bar of an inversion: optimisation steps of the run, the pyramid level and the
loss, instead of Lightning's epochs (an inversion has steps and pyramid phases)."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting the run's steps (``step 120/300``, ``step 120/?`` without
    a step budget), with the finest pyramid level switched on (``level=3``, ``level=2-4`` while
    the images differ) and the mean loss ``Z``: read from the device at most every
    ``MIN_INTERVAL`` seconds (and at the last step), so that a fast step reads nothing."""

    MIN_INTERVAL = 0.25

    BAR = "step {n_fmt}/{total_fmt} |{bar}| [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate)
        self._postfix: dict[str, str] = {}
        self._shown = 0.0  # when the bar was last drawn (time.monotonic)

    def init_train_tqdm(self) -> Any:
        bar = super().init_train_tqdm()
        bar.bar_format, bar.unit = self.BAR, " steps"
        return bar

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.total = trainer.max_steps if trainer.max_steps > 0 else None
        bar.n = trainer.global_step  # a resumed run goes on from its step
        bar.refresh()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        step, bar = trainer.global_step, self.train_progress_bar
        now, last = time.monotonic(), step == bar.total if bar is not None else False
        if (
            bar is not None
            and self._should_update(step, bar.total)
            and (last or now - self._shown >= self.MIN_INTERVAL)
        ):
            self._shown = now
            self._postfix = self.postfix(pl_module, outputs)
            bar.n = step
            bar.set_postfix(self._postfix, refresh=True)

    @staticmethod
    def postfix(pl_module: pl.LightningModule, outputs: Any) -> dict[str, str]:
        """``level`` and ``loss`` of the step that ended."""
        finest_on = pl_module.schedule.finest_on
        low, high = int(finest_on.min()), int(finest_on.max())
        loss = float(outputs["per_image"].mean()) if outputs else float("nan")
        return {"level": str(low) if low == high else f"{low}-{high}", "loss": f"{loss:.4g}"}

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        # Lightning's would be the version number and what was logged to the bar.
        return self._postfix
