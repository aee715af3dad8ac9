"""Callbacks: the coarse-to-fine switching schedule, and the writer of the run's outputs."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from slp_lightning.outputs import write_png, write_results, write_sheet


class PyramidSwitch(Callback):
    """Switch on the next finer pyramid level of an image when its loss has converged.

    An image's phase has converged when it has run ``min_steps`` and either its loss ``Z`` has
    not improved by a relative ``rel_tol`` for ``patience`` steps, or the phase has run
    ``max_steps_per_level``. Converging in the final phase (all levels on) marks the image done;
    the run stops when every image is done (done images keep refining until then). The
    optimiser state carries over a switch: the loss changes smoothly there, and Adam's
    per-element moments re-adapt within a few dozen steps.
    """

    def __init__(
        self,
        rel_tol: float = 1e-3,
        patience: int = 20,
        min_steps: int = 20,
        max_steps_per_level: int = 500,
    ) -> None:
        if not 0 <= rel_tol < 1:
            raise ValueError(f"rel_tol must be in [0, 1), got {rel_tol}")
        if patience < 1 or min_steps < 0 or max_steps_per_level < max(min_steps, 1):
            raise ValueError(
                "need patience >= 1, min_steps >= 0 and max_steps_per_level >= max(min_steps, 1); "
                f"got patience={patience}, min_steps={min_steps}, "
                f"max_steps_per_level={max_steps_per_level}"
            )
        self.rel_tol = rel_tol
        self.patience = patience
        self.min_steps = min_steps
        self.max_steps_per_level = max_steps_per_level
        self.state: dict[str, Tensor] = {}

    def _reset(self, rows: Tensor, step: int) -> None:
        self.state["best"][rows] = torch.inf
        self.state["phase_start"][rows] = step
        self.state["last_improved"][rows] = step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        loss = outputs["per_image"].detach().float().cpu()
        step = trainer.global_step
        if not self.state:
            count = len(loss)
            self.state = {
                "best": torch.full((count,), torch.inf),
                "phase_start": torch.zeros(count, dtype=torch.long),
                "last_improved": torch.zeros(count, dtype=torch.long),
                "done": torch.zeros(count, dtype=torch.bool),
            }
        s = self.state
        improved = loss < s["best"] * (1 - self.rel_tol)  # Z >= 0, and inf * x stays inf
        s["last_improved"][improved] = step
        s["best"] = torch.minimum(s["best"], loss)
        age = step - s["phase_start"]
        converged = (age >= self.min_steps) & (
            (step - s["last_improved"] >= self.patience) | (age >= self.max_steps_per_level)
        )
        final = pl_module.finest_on.cpu() == 1
        s["done"] |= converged & final
        switch = converged & ~final
        if switch.any():
            pl_module.switch_on_next_level(switch)
            self._reset(switch, step)
        if trainer.strategy.reduce_boolean_decision(bool(s["done"].all()), all=True):
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.state = dict(state_dict)


class OutputWriter(Callback):
    """Write what a run produces, under the logger's run directory (rank 0 only).

    TensorBoard: the targets once; ``I_r`` and ``I_in`` at every level switch and every
    ``image_every_n_steps``. Files: ``reconstructions/<name>_level<k>.png`` when an image's phase
    k ends, ``reconstructions/<name>.png`` and ``sheet.png`` at the end, and ``results.json``.
    The files are also written when the run stops on an error or Ctrl-C, with what was reached.
    """

    def __init__(self, image_every_n_steps: int = 100) -> None:
        if image_every_n_steps < 1:
            raise ValueError(f"image_every_n_steps must be >= 1, got {image_every_n_steps}")
        self.image_every_n_steps = image_every_n_steps
        self._finest_on: Tensor | None = None

    @staticmethod
    def _tensorboard(trainer: pl.Trainer):  # noqa: ANN205
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    def _log_images(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        board = self._tensorboard(trainer)
        if board is not None:
            I_r, I_in = pl_module.image_model()
            board.add_images("I_r", I_r.detach(), trainer.global_step)
            board.add_images("I_in", I_in.detach(), trainer.global_step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finest_on = pl_module.finest_on.clone()
        board = self._tensorboard(trainer)
        if trainer.is_global_zero and board is not None:
            board.add_images("targets", pl_module.targets, 0)
            board.add_text("weights", pl_module.network.weights, 0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if not trainer.is_global_zero:
            return
        ended = pl_module.finest_on != self._finest_on
        if ended.any():
            I_r = pl_module.image_model()[0].detach()
            for row in torch.nonzero(ended).flatten().tolist():
                level = int(self._finest_on[row])
                write_png(I_r[row], trainer.log_dir, f"{pl_module.names[row]}_level{level}")
            self._finest_on = pl_module.finest_on.clone()
        if ended.any() or trainer.global_step % self.image_every_n_steps == 0:
            self._log_images(trainer, pl_module)

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, status: str) -> None:
        if not trainer.is_global_zero or getattr(pl_module, "I_pre", None) is None:
            return
        I_r = pl_module.image_model()[0].detach()
        for row, name in enumerate(pl_module.names):
            write_png(I_r[row], trainer.log_dir, name)
            write_png(I_r[row], trainer.log_dir, f"{name}_level{int(pl_module.finest_on[row])}")
        self._log_images(trainer, pl_module)
        write_sheet(pl_module.targets, pl_module.names, pl_module.pyramid.levels, trainer.log_dir)
        write_results(pl_module, trainer.global_step, status, trainer.log_dir)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "finished")

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        reason = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self._finish(trainer, pl_module, f"{reason}: {type(exception).__name__}: {exception}")
