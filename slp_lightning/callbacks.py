"""Callbacks: the coarse-to-fine switching schedule, the writer of the run's outputs, and the
semantic score of an independent classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from slp_lightning import semantic
from slp_lightning.distributed import lost_peer
from slp_lightning.exits import stopping_signal
from slp_lightning.features import TARGET_FEATURES, write_features
from slp_lightning.metrics import NormalizedError
from slp_lightning.networks.module_network import Convention
from slp_lightning.networks.weights import RANDOM
from slp_lightning.outputs import RECONSTRUCTIONS, report, write_png, write_results, write_sheet


class SwitchListener(Callback):
    """A callback that acts when pyramid levels switch on. ``PyramidSwitch`` calls
    ``on_pyramid_switch`` on every listener of the Trainer, on every process, at each step where
    any image on any process switched (so listeners may use collectives), right after the switch
    and whatever the order of the callbacks."""

    def on_pyramid_switch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Levels were switched on at ``trainer.global_step`` (``pl_module.finest_on`` says which)."""


class PyramidSwitch(Callback):
    """Switch on the next finer pyramid level of an image when its loss has converged.

    An image's phase has converged when it has run ``min_steps`` and either its loss ``Z`` has
    not improved by a relative ``rel_tol`` for ``patience`` steps, or (coarse phases only) the
    phase has used its share of the budget: ``max_steps_per_level`` steps when given, else
    ``phase_share`` of the Trainer's ``max_steps`` (30 of 1000 steps, 6 of 200: a short run is
    not mostly coarse; without ``max_steps`` a coarse phase runs until it converges, the paper's
    rule). The final phase (all levels on, where the baselines
    start) uses ``final_patience`` (default: ``patience``); converging there marks the image done;
    the run stops when every image on every process is done (done images keep refining until
    then). Each image switches on its own; the stop is decided jointly, and every
    ``SwitchListener`` hears of a step where any image on any process switched. The bookkeeping
    lives in the module's per-image buffers, so checkpoints carry it. The optimiser state carries
    over a switch (see the README). ``FeatureInversion`` adds one with these defaults to a Trainer
    that has none.
    """

    def __init__(
        self,
        rel_tol: float = 1e-3,
        patience: int = 10,
        min_steps: int = 5,
        max_steps_per_level: int | None = None,
        final_patience: int | None = 200,
        phase_share: float = 0.03,
    ) -> None:
        if not 0 <= rel_tol < 1:
            raise ValueError(f"rel_tol must be in [0, 1), got {rel_tol}")
        if not 0 < phase_share < 1:
            raise ValueError(
                f"phase_share is a share of the step budget, in (0, 1); got {phase_share}"
            )
        if (
            patience < 1 or min_steps < 0 or (final_patience or 1) < 1
            or (max_steps_per_level is not None and max_steps_per_level < max(min_steps, 1))
        ):  # fmt: skip
            raise ValueError(
                "need patience >= 1, final_patience >= 1, min_steps >= 0 and max_steps_per_level >= "
                f"max(min_steps, 1); got patience={patience}, final_patience={final_patience}, "
                f"min_steps={min_steps}, max_steps_per_level={max_steps_per_level}"
            )
        self.rel_tol = rel_tol
        self.patience = patience
        self.min_steps = min_steps
        self.max_steps_per_level = max_steps_per_level
        self.final_patience = final_patience or patience
        self.phase_share = phase_share

    def steps_per_level(self, max_steps: int) -> float:
        """The step cap of each coarse phase for a run of ``max_steps`` (-1: unbounded)."""
        if self.max_steps_per_level is not None:
            return self.max_steps_per_level
        if max_steps <= 0:
            return float("inf")
        return max(self.min_steps, 1, round(self.phase_share * max_steps))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        m, step = pl_module, trainer.global_step
        loss = outputs["per_image"].detach().float()
        improved = loss < m.phase_best * (1 - self.rel_tol)  # Z >= 0, and inf * x stays inf
        m.last_improved[improved] = step
        m.phase_best.copy_(torch.minimum(m.phase_best, loss))
        age = step - m.phase_start
        final = m.finest_on == 1
        # The phase budget forces switches; the final phase runs until it stalls (or the run's
        # step budget ends), so the baselines, which start there, get the whole budget too.
        patience = torch.where(final, self.final_patience, self.patience)
        cap = self.steps_per_level(trainer.max_steps)
        converged = (age >= self.min_steps) & (
            (step - m.last_improved >= patience) | ((age >= cap) & ~final)
        )
        m.done |= converged & final
        switch = converged & ~final
        if switch.any():
            m.switch_on_next_level(switch)
            m.phase_best[switch] = torch.inf
            m.phase_start[switch] = step
            m.last_improved[switch] = step
        # One collective a step answers both questions every process must agree on.
        here = torch.tensor([float(switch.any()), float(not m.done.all())], device=m.device)
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
    """

    def __init__(self, on_switch: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_switch = on_switch
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
            rank_zero_info(
                f"stopped at step {trainer.global_step}; resume with --ckpt_path {self.last_model_path}"
            )


class SemanticScore(Callback):
    """Semantic fidelity at the end of a run: an independent classifier's top-1 class of each
    target and of its reconstruction ``I_r``, whether they agree, whether the target's class is in
    the reconstruction's top 5, the probability the reconstruction keeps of it, and the distance
    of their penultimate features (``slp_lightning.semantic``), in ``results.json``.

    The inverted network's own label of its reconstruction proves little (the inversion matched
    its features); another classifier says whether the image still shows the class. The images
    are scored at the inversion's size. With several processes each scores its own images and
    the scores are gathered. Without target images (``--data.features``) nothing is scored.

    Args:
        classifier: ``None`` (nothing computed), ``auto`` (EfficientNet-Lite0 for an inverted
            MobileNetV2, else MobileNetV2), ``mobilenet_v2``, ``efficientnet_lite0``,
            ``torchvision`` (with ``arch``), or any network spec or ``nn.Module`` giving logits.
        arch: the architecture of ``classifier: torchvision``.
        logits_layer: the module path of a network's logits (``None``: its output).
        features_layer: the module path of its penultimate features (a shortcut's own by
            default; none for other networks: no feature distance).
        weights: the classifier's weights (``auto``: its own; a path: a state dict).
        network_args: the keyword arguments of a classifier's class or factory.
        input_mean: its input convention (``build_feature_network``'s).
        input_std: its input convention.
        batch_size: images per forward of the classifier.
    """

    def __init__(
        self,
        classifier: str | nn.Module | None = None,
        arch: str | None = None,
        logits_layer: str | None = None,
        features_layer: str | None = None,
        weights: str = "auto",
        network_args: dict[str, Any] | None = None,
        input_mean: Convention = None,
        input_std: Convention = None,
        batch_size: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"--eval.batch_size must be >= 1, got {batch_size}")
        self.classifier = classifier
        self.settings = {
            "arch": arch, "logits_layer": logits_layer, "features_layer": features_layer, "weights": weights,
            "network_args": network_args, "input_mean": input_mean, "input_std": input_std,
        }  # fmt: skip
        self.batch_size = batch_size
        self._evaluators: dict[str, semantic.Evaluator] = {}
        #: ``semantic.as_results`` of the last run (on the first process), or ``None``
        self.results: dict | None = None

    def evaluator(self, inverted: nn.Module) -> semantic.Evaluator | None:
        """The classifier for a run of ``inverted`` (built once), ``None`` when none is set or its
        weights fell back to random (a loud warning has said so)."""
        classifier = self.classifier
        if classifier is None:
            return None
        if classifier == semantic.AUTO:
            classifier = semantic.default_classifier(inverted)
        key = classifier if isinstance(classifier, str) else "module"
        if key not in self._evaluators:
            self._evaluators[key] = semantic.build_evaluator(classifier, **self.settings)
        evaluator = self._evaluators[key]
        return None if evaluator.weights == RANDOM else evaluator

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict | None:
        """Score every process's final ``I_r`` (every process must call: the scores are gathered);
        on the first process, ``semantic.as_results`` of every image, else ``None``."""
        evaluator = self.evaluator(pl_module.network)
        if evaluator is None or pl_module.targets is None:
            return None
        evaluator.to(pl_module.device)
        I_r = pl_module.image_model()[0].detach()
        scores = semantic.evaluate(evaluator, pl_module.targets, I_r, batch_size=self.batch_size)
        scores = {key: pl_module.gather(value) for key, value in scores.items()}
        self.results = semantic.as_results(evaluator, scores) if trainer.is_global_zero else None
        return self.results

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.results = None
        self.evaluator(
            pl_module.network
        )  # a missing package or a bad spec fails now, not at the end

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not any(isinstance(callback, OutputWriter) for callback in trainer.callbacks):
            self.measure(
                trainer, pl_module
            )  # else the writer asks, to put the scores in results.json


def output_writer(trainer: pl.Trainer, needed_by: str) -> OutputWriter:
    """The Trainer's ``OutputWriter``, whose ``results`` ``needed_by`` reads."""
    writer = next((c for c in trainer.callbacks if isinstance(c, OutputWriter)), None)
    if writer is None:
        raise ValueError(f"{needed_by} need an OutputWriter: its results are read after each run")
    return writer


class OutputWriter(SwitchListener):
    """Write what a run produces, under the logger's run directory (by the first process).

    TensorBoard: the targets once; ``I_r`` and ``I_in`` at every level switch and every
    ``image_every_n_steps``. Files: ``reconstructions/<stem>_level<k>.png`` when an image's phase
    k ends, ``reconstructions/<stem>.png`` and ``sheet.png`` at the end, and ``results.json``
    (``outputs.file_stem``: the name, made a safe and unique file name when it is not one).
    The files are also written when the run stops on an error or Ctrl-C, with what was reached
    (with several processes, each then writes its own images and ``results_rank<r>.json``).

    Args:
        image_every_n_steps: how often ``I_r`` and ``I_in`` go to TensorBoard between switches.
        save_target_features: also write ``target_features.pt`` at the start: the targets'
            features, name → tensor, which ``--data.features`` inverts without the images.
    """

    def __init__(self, image_every_n_steps: int = 100, save_target_features: bool = False) -> None:
        if image_every_n_steps < 1:
            raise ValueError(f"image_every_n_steps must be >= 1, got {image_every_n_steps}")
        self.image_every_n_steps = image_every_n_steps
        self.save_target_features = save_target_features
        self._finest_on: Tensor | None = None
        self._images_step = -1  # the last step whose images went to TensorBoard
        self.run_dir: Path | None = None
        #: what ``results.json`` holds, once the run has ended (on the first process; after an
        #: exception, on every process, what it wrote: see ``results_file``)
        self.results: dict | None = None
        self.results_file: Path | None = None

    @staticmethod
    def _tensorboard(trainer: pl.Trainer):  # noqa: ANN205
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # trainer.log_dir is a collective: read it once, here, on every process.
        self.run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        self._finest_on = pl_module.finest_on.clone()
        targets = None if pl_module.targets is None else pl_module.gather(pl_module.targets)
        features = (
            pl_module.gather(pl_module.target_features) if self.save_target_features else None
        )
        board = self._tensorboard(trainer)
        if trainer.is_global_zero and board is not None:
            if targets is not None:
                board.add_images("targets", targets, 0)
            board.add_text("weights", pl_module.network.weights, 0)
        if trainer.is_global_zero and features is not None:
            write_features(self.run_dir / TARGET_FEATURES, pl_module.all_names, features)

    def on_pyramid_switch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The PNG of each phase that ended, and the images to TensorBoard (every process takes
        part: the gathers are collective)."""
        ended = pl_module.finest_on != self._finest_on
        ended_levels = pl_module.gather(torch.where(ended, self._finest_on, 0))
        self._finest_on = pl_module.finest_on.clone()
        I_r = self._log_images(trainer, pl_module)
        if trainer.is_global_zero:
            for row in torch.nonzero(ended_levels).flatten().tolist():
                name = pl_module.all_names[row]
                write_png(I_r[row], self.run_dir, name, int(ended_levels[row]))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if (
            trainer.global_step % self.image_every_n_steps == 0
            and self._images_step != trainer.global_step
        ):
            self._log_images(trainer, pl_module)

    def _log_images(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Tensor:
        """Every process's ``I_r`` and ``I_in`` to TensorBoard (a collective); returns ``I_r``."""
        I_r, I_in = (pl_module.gather(x.detach()) for x in pl_module.image_model())
        self._images_step = trainer.global_step
        board = self._tensorboard(trainer)
        if trainer.is_global_zero and board is not None:
            board.add_images("I_r", I_r, trainer.global_step)
            board.add_images("I_in", I_in, trainer.global_step)
        return I_r

    def _write_pngs(self, I_r: Tensor, names: list[str], levels: Tensor) -> None:
        """The final image of each target, also as the end of the phase it was in."""
        for image, name, level in zip(I_r, names, levels.tolist()):
            write_png(image, self.run_dir, name)
            write_png(image, self.run_dir, name, level)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        I_r = pl_module.gather(pl_module.image_model()[0].detach())
        levels = pl_module.gather(pl_module.finest_on)
        # Synchronised over this Trainer's processes only: a dealt chunk's process is one of
        # several in the process group, yet its run is a one-process run.
        metric = NormalizedError(
            pl_module.n_f, distributed_available_fn=lambda: trainer.world_size > 1
        )
        metric = metric.to(pl_module.device)
        errors = {k: pl_module.gather(v) for k, v in pl_module.evaluate(metric).items()}
        targets = None if pl_module.targets is None else pl_module.gather(pl_module.targets)
        switch_steps = pl_module.gather(pl_module.switch_steps)
        mean_normalized_error = metric.compute().item()  # a collective: every process's images
        scorer = next((c for c in trainer.callbacks if isinstance(c, SemanticScore)), None)
        scores = scorer.measure(trainer, pl_module) if scorer is not None else None  # a collective
        if trainer.is_global_zero:
            self._write_pngs(I_r, pl_module.all_names, levels)
            write_sheet(targets, pl_module.all_names, pl_module.pyramid.levels, self.run_dir)
            self.results_file = self.run_dir / "results.json"
            self.results = write_results(
                pl_module, pl_module.all_names, errors, levels, switch_steps,
                trainer.global_step, "finished", self.results_file, mean_normalized_error, scores,
            )  # fmt: skip

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.run_dir is None or getattr(pl_module, "I_pre", None) is None:
            return  # failed before the run started: nothing reached yet
        signal_name = stopping_signal(exception)
        status = (
            f"interrupted: {signal_name}" if signal_name
            else f"failed: {type(exception).__name__}: {exception}"
        )  # fmt: skip
        # No collectives here: other processes may be gone. Each writes its own images.
        I_r = pl_module.image_model()[0].detach()
        self._write_pngs(I_r, pl_module.names, pl_module.finest_on)
        name = (
            "results.json" if trainer.world_size == 1 else f"results_rank{trainer.global_rank}.json"
        )
        self.results_file = self.run_dir / name
        self.results = write_results(
            pl_module, pl_module.names, pl_module.evaluate(), pl_module.finest_on,
            pl_module.switch_steps, trainer.global_step,
            status, self.results_file,
        )  # fmt: skip
        if trainer.world_size == 1:
            write_sheet(pl_module.targets, pl_module.names, pl_module.pyramid.levels, self.run_dir)

    def report(self) -> str | None:
        """What the run produced, in the lines the command line prints at a run's end
        (``outputs.report``): its status, images, steps and means, where the reconstructions,
        ``sheet.png`` and the results file are, and the TensorBoard command; ``None`` while this
        process has written no results. Printing is left to the caller: a sweep's jobs and a
        chunked run's chunks each have an ``OutputWriter``, and their Trainers stay quiet."""
        if self.results is None or self.results_file is None:
            return None
        count, results = len(self.results["images"]), self.results
        files = {
            "reconstructions": self.run_dir / RECONSTRUCTIONS,
            "sheet": self.run_dir / "sheet.png",
            "results": self.results_file,
        }
        headline = f"{count} image{'s' if count != 1 else ''}, {results['steps']} steps ({results['status']})"
        return report(
            headline, results, {k: v for k, v in files.items() if v.exists()}, self.run_dir
        )
