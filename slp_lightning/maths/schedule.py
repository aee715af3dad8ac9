"""The coarse-to-fine schedule in plain PyTorch: each image's pyramid state, the rule that says
when an image's phase has converged, and each image's learning rate.

A *phase* is the run of steps between two switches: it starts with the image's finest level
``finest_on`` switched on and ends when the next finer level comes on (or, for the final phase,
level 1 on, when it has converged and the image is done).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.maths.pyramid import LaplacianPyramid

LR_SCHEDULES = ("constant", "cosine")


class SwitchSchedule(nn.Module):
    """The switching state of ``count`` images of a ``levels``-level pyramid, one entry per image,
    all buffers (a checkpoint holds them):

    - ``finest_on``: the finest level switched on, K down to 1 (1 from the start for a method
      without a pyramid, ``coarse_to_fine=False``: ``I_in = I_r``);
    - ``switch_steps`` (count, K − 1): the steps of the image's switches in the order they were
      made, -1 for those still to come;
    - ``phase_start``, ``phase_best``, ``last_improved``: the step its phase began, its lowest
      loss in the phase and the step that loss last improved;
    - ``done``: its final phase has converged.

    Several jobs in one batch (``jobs``: each image's job, 0 to J − 1; ``start``: each image's K):
    an image may start at a level below ``levels``, and once every image of a job is done the
    job is ``frozen`` (``freeze_done_jobs``: at the step its own run would have stopped,
    ``job_stop``): its images neither move nor switch again.
    """

    def __init__(
        self,
        count: int,
        levels: int,
        coarse_to_fine: bool = True,
        device: torch.device | None = None,
        start: Tensor | None = None,
        jobs: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.levels = levels
        first = torch.full((count,), levels if coarse_to_fine else 1, device=device)
        first = first if start is None or not coarse_to_fine else start.to(first)
        self.register_buffer("finest_on", first)
        self.register_buffer("switch_steps", torch.full((count, levels - 1), -1, device=device))
        self.register_buffer("phase_start", torch.zeros(count, dtype=torch.long, device=device))
        self.register_buffer("phase_best", torch.full((count,), torch.inf, device=device))
        self.register_buffer("last_improved", torch.zeros(count, dtype=torch.long, device=device))
        self.register_buffer("done", torch.zeros(count, dtype=torch.bool, device=device))
        self.batched = jobs is not None
        jobs = torch.zeros(count, dtype=torch.long) if jobs is None else jobs
        self.register_buffer("jobs", jobs.to(device=device, dtype=torch.long), persistent=False)
        # Only a batch of jobs saves them: checkpoints of single runs keep their keys.
        self.register_buffer(
            "frozen", torch.zeros(count, dtype=torch.bool, device=device), persistent=self.batched
        )
        count_jobs = int(jobs.max()) + 1 if self.batched and count else 1
        self.register_buffer(
            "job_stop", torch.full((count_jobs,), -1, device=device), persistent=self.batched
        )
        self._coarsest: int | None = None
        # A restored state may have switched: its coarsest level is read again when asked.
        self.register_load_state_dict_post_hook(SwitchSchedule._restored)

    @staticmethod
    def _restored(module: SwitchSchedule, keys: object) -> None:  # noqa: ARG004 - a hook's signature
        module._coarsest = None

    @property
    def coarsest(self) -> int:
        """The coarsest finest level on of any image, known on the host: read from the device
        only after a switch or a restore, so that a step reads nothing."""
        if self._coarsest is None:
            self._coarsest = self._read_coarsest()
        return self._coarsest

    def _read_coarsest(self) -> int:
        return int(self.finest_on.max()) if len(self.finest_on) else 1

    @property
    def final(self) -> Tensor:
        """Whether each image is in its final phase (every level on)."""
        return self.finest_on == 1

    def per_job_all(self, flags: Tensor) -> Tensor:
        """Whether ``flags`` (bool (N,)) hold for every image of each image's job, per image."""
        every = torch.ones(len(self.job_stop), dtype=torch.float32, device=flags.device)
        every = every.scatter_reduce(0, self.jobs, flags.float(), reduce="amin")
        return every[self.jobs] > 0

    def freeze_done_jobs(self, step: int) -> None:
        """Freeze every job whose images are all done, recording the ``step`` it stopped at."""
        done = self.per_job_all(self.done)
        newly = torch.zeros_like(self.job_stop, dtype=torch.bool).scatter_(
            0, self.jobs, done & ~self.frozen
        )
        self.job_stop.copy_(torch.where(newly & (self.job_stop < 0), step, self.job_stop))
        self.frozen |= done

    def switch_on_next_level(self, rows: Tensor, step: int) -> None:
        """Switch on the next finer level at ``step`` for images ``rows`` (bool) not yet at
        level 1, each starting a new phase."""
        rows = rows.to(self.finest_on.device) & ~self.final
        self.finest_on[rows] -= 1
        made = self.levels - self.finest_on[rows]  # this image's switches so far, this one included
        self.switch_steps[rows, made - 1] = step
        self.phase_start[rows] = step
        self.phase_best[rows] = torch.inf
        self.last_improved[rows] = step
        self._coarsest = self._read_coarsest()  # now: the host reads at a switch's step anyway


@dataclass(frozen=True)
class ConvergenceRule:
    """When an image's phase has converged: once it has run ``min_steps``, when its loss ``Z``
    has not improved by a relative ``rel_tol`` for ``patience`` steps (``final_patience`` in the
    final phase; ``None``: ``patience``), or, in a coarse phase, when the phase has used its share
    of the budget: ``max_steps_per_level`` steps when given, else ``phase_share`` of the run's
    ``max_steps`` (30 of 1000 steps, 6 of 200: a short run is not mostly coarse; without a step
    budget a coarse phase runs until it converges, the paper's rule)."""

    rel_tol: float = 1e-3
    patience: int = 10
    min_steps: int = 5
    max_steps_per_level: int | None = None
    final_patience: int | None = 200
    phase_share: float = 0.03

    def __post_init__(self) -> None:
        check_range(self.rel_tol, "PyramidSwitch.rel_tol", low=0, high=1, high_open=True)
        check_range(
            self.phase_share, "PyramidSwitch.phase_share", low=0, high=1, low_open=True,
            high_open=True, meaning="a share of the step budget",
        )  # fmt: skip
        check_range(self.patience, "PyramidSwitch.patience", low=1, integer=True)
        check_range(self.final_patience, "PyramidSwitch.final_patience", low=1, integer=True)
        check_range(self.min_steps, "PyramidSwitch.min_steps", low=0, integer=True)
        check_range(
            self.max_steps_per_level, "PyramidSwitch.max_steps_per_level",
            low=max(self.min_steps, 1), integer=True, meaning="at least min_steps",
        )  # fmt: skip

    def steps_per_level(self, max_steps: int) -> float:
        """The step cap of each coarse phase for a run of ``max_steps`` (-1: unbounded)."""
        if self.max_steps_per_level is not None:
            return self.max_steps_per_level
        if max_steps <= 0:
            return float("inf")
        return max(self.min_steps, 1, round(self.phase_share * max_steps))

    def converged(
        self, schedule: SwitchSchedule, loss: Tensor, step: int, max_steps: int
    ) -> Tensor:
        """Record each image's loss (N,) at ``step`` in ``schedule``'s bookkeeping and mark the
        images whose final phase converged ``done``; returns the images whose coarse phase
        converged (bool (N,)): those due a switch."""
        s = schedule
        # Better by a relative rel_tol, for a loss of either sign (a visualisation's is minus an
        # activation): inf * x stays inf, so a phase's first loss always improves.
        best = s.phase_best
        improved = loss < best * torch.where(best >= 0, 1 - self.rel_tol, 1 + self.rel_tol)
        s.last_improved.masked_fill_(improved, step)
        torch.minimum(s.phase_best, loss, out=s.phase_best)
        age, final = step - s.phase_start, s.final
        # The phase budget forces switches; the final phase runs until it stalls (or the run's
        # step budget ends), so the baselines, which start there, get the whole budget too.
        patience = torch.where(final, self.final_patience or self.patience, self.patience)
        capped = (age >= self.steps_per_level(max_steps)) & ~final
        converged = (age >= self.min_steps) & ((step - s.last_improved >= patience) | capped)
        if s.batched:  # a frozen job's images stay as its own run left them
            converged &= ~s.frozen
        s.done |= converged & final
        return converged & ~final


#: ``σ(4.6)`` is 0.99. ``band_lr``'s large rates for the coarse bands can carry a channel whose
#: target is near black or white far into σ's flat tails in a few steps (Adam's momentum), where
#: its gradient vanishes and nothing brings it back; so beyond ±4.6 a filtered step goes no
#: further than the plain step would (benchmarks/RESULTS.md, "band_lr on VGG16-BN").
I_PRE_BOUND = 4.6


@dataclass(frozen=True)
class LearningRates:
    """Each image's learning rate as a multiple of the optimiser's: ``coarse_lr`` in coarse
    phases; in the final phase 1 (``lr_schedule: constant``) or, with ``cosine``, a cosine from 1
    down to 1 % from the step the image's final phase began to the run's ``max_steps``; and, in
    the final phase, ``band_lr``: the multiples of that rate each Laplacian level of the step
    gets, level 1 (the finest) first, the last entry the low-pass residual of a
    ``len(band_lr)``-level pyramid; near σ's tails ``bounded`` holds those steps back.

    Why per phase, not over the run: at a shallow layer of a trained network (CRAFT relu1_2)
    what is left after a short run is the image's mean brightness, which the features barely
    see and which Adam moves by about one learning rate a step, so the error at the end is set
    by the sum of the final phase's rates (benchmarks/RESULTS.md, "Why relu1_2 loses").
    """

    lr_schedule: str = "cosine"
    coarse_lr: float = 1.0
    band_lr: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.band_lr:
            raise ArgumentError(
                "band_lr needs one multiple at least; got []", "FeatureInversion.band_lr"
            )
        for name, values in {"coarse_lr": [self.coarse_lr], "band_lr": self.band_lr}.items():
            for value in values:
                check_range(
                    value, f"FeatureInversion.{name}", low=0, low_open=True,
                    meaning="a multiple of the optimiser's learning rate",
                )  # fmt: skip
        if self.lr_schedule not in LR_SCHEDULES:
            raise ArgumentError(
                f"unknown lr_schedule {self.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}",
                "FeatureInversion.lr_schedule",
            )

    def scales(self, schedule: SwitchSchedule, step: int, max_steps: int) -> Tensor:
        """The multiples (N,) at optimiser step ``step`` of a run of ``max_steps`` (-1: unbounded)."""
        final = schedule.final
        if self.lr_schedule == "constant" or max_steps <= 0:
            return torch.where(final, 1.0, self.coarse_lr)
        start = schedule.phase_start  # of the final phase, where the cosine counts
        length = (max_steps - start).clamp(min=1).float()
        progress = ((step - start).float() / length).clamp(0, 1)
        cosine = 0.01 + 0.99 * 0.5 * (1 + torch.cos(torch.pi * progress))
        return torch.where(final, cosine, self.coarse_lr)

    @property
    def always_one(self) -> bool:
        """Whether every multiple is 1 at every step (a constant rate, coarse phases too, and no
        band filtered): the optimiser's step is then the step, as a setting says."""
        return self.lr_schedule == "constant" and self.coarse_lr == 1 and not self.filters_bands

    @property
    def filters_bands(self) -> bool:
        """Whether ``band_lr`` changes any level's rate (else no step is filtered)."""
        return any(multiple != 1 for multiple in self.band_lr)

    @staticmethod
    def bounded(plain: Tensor, filtered: Tensor) -> Tensor:
        """``filtered`` (``I_pre`` after a step filtered by ``band_lr``) held, beyond
        ±``I_PRE_BOUND``, to ``plain`` (after the same step unfiltered): past the bound a
        filtered step goes no further out than the plain one, nor past the bound itself."""
        return filtered.clamp(plain.clamp(max=-I_PRE_BOUND), plain.clamp(min=I_PRE_BOUND))

    def step(
        self, I_pre: Tensor, optimizer_step: Callable[[], object], schedule: SwitchSchedule, step: int,
        max_steps: int, pyramid: LaplacianPyramid,
    ) -> None:  # fmt: skip
        """``optimizer_step()``, then each image's update of ``I_pre`` scaled by its multiple
        (``scales``) and its bands by ``band_lr``: exactly a learning rate per image and band for
        optimisers whose step is proportional to it (Adam, SGD). Nothing is read from the device."""
        # The multiples depend on the step and the switches only, which the optimiser's step does
        # not change: known before it; settings whose multiples are always 1 copy nothing.
        if self.always_one and not schedule.batched:
            optimizer_step()
            return
        scales = self.scales(schedule, step, max_steps)
        # Every image of a job at the full rate: its own run's step, as it is. A single run has
        # one job and nothing frozen, which saves the per-job operations on every step.
        if schedule.batched:
            exact = schedule.per_job_all(scales == 1) & ~schedule.frozen
            scales = torch.where(schedule.frozen, torch.zeros_like(scales), scales)
        else:
            exact = (scales == 1).all().expand_as(scales)
        before = I_pre.detach().clone()
        optimizer_step()
        with torch.no_grad():
            update = scales.to(before.dtype).view(-1, *[1] * (before.dim() - 1)) * (I_pre - before)
            after = before + update
            if self.filters_bands:
                steps = pyramid.scale_bands(update, self.bands(schedule))
                after = self.bounded(after, before + steps)
            else:  # the optimiser's own step, as it is (no host read to know)
                after = torch.where(exact.view(-1, *[1] * (before.dim() - 1)), I_pre, after)
            I_pre.copy_(after)

    def bands(self, schedule: SwitchSchedule) -> Tensor:
        """The multiples (N, m) of each image's step its m pyramid levels get at this step,
        finest first: ``band_lr`` in the final phase, else 1."""
        final = schedule.final[:, None]
        multiples = torch.tensor(self.band_lr, dtype=torch.float32, device=final.device)
        return torch.where(final, multiples, torch.ones_like(multiples))


def band_multiples(band_lr: float | Sequence[float]) -> tuple[float, ...]:
    """``band_lr`` (one multiple, or one per level finest first) as ``LearningRates`` takes it."""
    multiples = (band_lr,) if isinstance(band_lr, int | float) else tuple(band_lr)
    return tuple(float(multiple) for multiple in multiples)
