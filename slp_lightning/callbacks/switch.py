"""The switching schedule as a callback: a level comes on when an image's phase converges."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.inversion.contrast import search_contrast
from slp_lightning.maths.schedule import ConvergenceRule
from slp_lightning.module.distributed import lost_peer

ACCELERATOR_CHECK_EVERY = 4  # steps between host reads on a GPU (PyramidSwitch.every)


class SwitchListener(Callback):
    """A callback that acts when pyramid levels switch on. ``PyramidSwitch`` calls
    ``on_pyramid_switch`` on every listener of the Trainer, on every process, at each step where
    any image on any process switched (so listeners may use collectives), right after the switch
    and whatever the order of the callbacks."""

    def on_pyramid_switch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Levels were switched on at ``trainer.global_step`` (``pl_module.schedule`` says which)."""


class PyramidSwitch(Callback):
    """Switch on the next finer pyramid level of an image when its phase has converged
    (``schedule.ConvergenceRule``, of these arguments: ``rule``).

    Converging in the final phase (all levels on, where the baselines start) marks the image
    done; the run stops when every image on every process is done (done images keep refining
    until then). Each image switches on its own; the stop is decided jointly, and every
    ``SwitchListener`` hears of a step where any image on any process switched. The state lives in
    the module's ``schedule``, so checkpoints carry it. The optimiser state carries over a switch
    (see the README). ``FeatureInversion`` adds one with these defaults to a Trainer that has none.

    At each switch, the image's contrast is searched channel by channel over
    ``contrast_scales`` (``contrast.search_contrast``; ``()``: no search), so that contrast a
    coarse phase laid down and the features cannot see does not stay for good.

    The convergence bookkeeping runs on the device at every step; the host reads it (and the
    processes agree on it) every ``check_every_n_steps`` steps only, at the first and the last:
    that is when images switch, listeners hear of it, the run stops when every image is done, and
    ``FeatureInversion``'s guards are read. ``None``: 1 on the CPU (reading costs nothing there),
    4 on an accelerator, whose queue would empty at every read (a switch comes at most 3 steps
    late; the patience is 10 steps).
    """

    def __init__(
        self,
        rel_tol: float = 1e-3,
        patience: int = 10,
        min_steps: int = 5,
        max_steps_per_level: int | None = None,
        final_patience: int | None = 200,
        phase_share: float = 0.03,
        contrast_scales: tuple[float, ...] = (0.25, 0.5, 0.75),
        check_every_n_steps: int | None = None,
    ) -> None:
        self.rule = ConvergenceRule(
            rel_tol, patience, min_steps, max_steps_per_level, final_patience, phase_share
        )
        if not all(0 <= scale < 1 for scale in contrast_scales):
            raise ArgumentError(
                f"contrast_scales are shares of an image's contrast, each in [0, 1); got "
                f"{list(contrast_scales)}",
                "PyramidSwitch.contrast_scales",
            )
        self.contrast_scales = tuple(contrast_scales)
        check_range(check_every_n_steps, "PyramidSwitch.check_every_n_steps", low=1, integer=True)
        self.check_every_n_steps = check_every_n_steps

    def every(self, device: torch.device) -> int:
        """The steps between two host reads on ``device``."""
        if self.check_every_n_steps is not None:
            return self.check_every_n_steps
        return 1 if device.type == "cpu" else ACCELERATOR_CHECK_EVERY

    def reads(self, step: int, max_steps: int, device: torch.device) -> bool:
        """Whether the host reads the schedule and the guards at optimiser step ``step`` (0 the
        first) of a run of ``max_steps``."""
        return step % self.every(device) == 0 or 0 < max_steps <= step + 1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if pl_module.automatic_optimization:  # else the module calls after_step at every step
            self.after_step(trainer, pl_module, outputs["per_image"])

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        """After an optimiser step whose losses were ``loss`` (N,): the rule's bookkeeping on the
        device; on a step the host reads, the switches, the listeners and the stop."""
        schedule, step = pl_module.schedule, trainer.global_step
        switch = self.rule.converged(schedule, loss.detach().float(), step, trainer.max_steps)
        if not self.reads(step - 1, trainer.max_steps, pl_module.device):  # step: after its step
            return  # the bookkeeping went on on the device; nothing is read on this step
        if schedule.batched:  # a job whose images are all done stops here, as its own run would
            schedule.freeze_done_jobs(step)
        switched = bool(switch.any())
        if switched:  # most steps switch nothing: no indexing on the step's path then
            schedule.switch_on_next_level(switch, step)
            if self.contrast_scales:
                search_contrast(
                    pl_module.inversion, schedule.finest_on, switch, self.contrast_scales,
                    self.rule.rel_tol,
                )  # fmt: skip
        # One collective a step answers both questions every process must agree on.
        here = torch.tensor(
            [float(switched), float(not schedule.done.all())], device=pl_module.device
        )
        try:
            anywhere = trainer.strategy.reduce(here, reduce_op="sum")
        except RuntimeError as error:  # the first collective of a step: where a lost peer shows
            if trainer.world_size == 1:
                raise
            raise lost_peer(error, trainer.global_rank, trainer.world_size, step) from error
        if anywhere[0] > 0:
            for listener in trainer.callbacks:
                if isinstance(listener, SwitchListener):
                    listener.on_pyramid_switch(trainer, pl_module)
        if anywhere[1] == 0:
            trainer.should_stop = True
