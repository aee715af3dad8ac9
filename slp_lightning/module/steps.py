"""The steps of an inversion as Lightning hooks: one optimiser step per Lightning step, or
several (``steps_per_call``), each with the guards on the device and each image's learning rate
(``schedule.LearningRates``); ``FeatureInversion`` is one."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from slp_lightning.callbacks.switch import PyramidSwitch
from slp_lightning.module.checks import warn_if_flat


class InversionSteps(pl.LightningModule):
    """The step hooks of a module with ``inversion`` (``Inversion``), ``schedule``
    (``SwitchSchedule``), ``watch`` (``FiniteWatch``), ``rates`` (``LearningRates``),
    ``optimizer`` and ``local_names``; ``hparams.steps_per_call`` optimiser steps a call."""

    def training_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        if self.automatic_optimization:
            return self._losses()
        optimizer, switch = self.optimizers(), self._switch()
        max_steps = self.trainer.max_steps
        calls = self.hparams.steps_per_call
        for _ in range(min(calls, max_steps - self.global_step) if max_steps > 0 else calls):
            outputs = self._losses()
            optimizer.zero_grad()
            self.manual_backward(outputs["loss"])
            self.rates.step(
                self.inversion.I_pre, optimizer.step, self.schedule, self.global_step,
                max_steps, self.inversion.pyramid,
            )  # fmt: skip
            switch.after_step(self.trainer, self, outputs["per_image"])
            if self.trainer.should_stop:
                break
        return outputs

    def _switch(self) -> PyramidSwitch | None:
        return next((c for c in self.trainer.callbacks if isinstance(c, PyramidSwitch)), None)

    def _losses(self) -> dict[str, Tensor]:
        """One step's losses, recorded by the guards and logged on Lightning's logging steps."""
        E, D, Z = self.inversion.losses(self.schedule.finest_on, self.schedule.coarsest)
        self.watch.loss(Z, self.global_step)
        # Only on the steps Lightning writes its logs: a log call costs more than a small step.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict({"loss/E": E.mean(), "loss/D": D.mean(), "loss/Z": Z.mean()})
            self.log("pyramid/level", self.schedule.finest_on.float().mean())
            if self.jobs:  # a batch of jobs (its rows job after job): each job's curve
                compactness, levels = self.jobs
                per_job = Z.detach().view(len(levels), -1).mean(1)
                self.log_dict(
                    {
                        f"loss_per_job/Z_lambda{c:g}_K{k}": z
                        for c, k, z in zip(compactness, levels, per_job, strict=True)
                    }
                )
        # Summing keeps the images independent: row n's gradient only depends on image n.
        return {"loss": Z.sum(), "per_image": Z.detach()}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        grad = self.inversion.I_pre.grad
        self.watch.gradient(grad, self.global_step, scaled)
        if self.global_step == 0:
            warn_if_flat(grad)
        switch = self._switch()
        if switch is None or switch.reads(self.global_step, self.trainer.max_steps, self.device):
            self.watch.check(self.local_names)  # before the step: I_pre keeps its last value

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The schedule is per image (``schedule.LearningRates``), applied in ``optimizer_step``.
        return self.optimizer([self.inversion.I_pre])

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """The optimiser's step with each image's learning rate (``LearningRates.step``)."""
        self.rates.step(
            self.inversion.I_pre, lambda: optimizer.step(closure=optimizer_closure), self.schedule,
            self.global_step, self.trainer.max_steps, self.inversion.pyramid,
        )  # fmt: skip
