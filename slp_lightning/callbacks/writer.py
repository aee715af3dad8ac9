"""The writer of what a run produces: PNGs, the sheet, ``results.json`` and TensorBoard images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from slp_lightning.callbacks.board import log_curves, log_hparams, tensorboard
from slp_lightning.callbacks.semantic_score import SemanticScore
from slp_lightning.callbacks.switch import SwitchListener
from slp_lightning.data.features import TARGET_FEATURES, write_features
from slp_lightning.data.images import reference_images
from slp_lightning.errors import check_range
from slp_lightning.inversion.visualisation import natural_activations
from slp_lightning.maths.metrics import NormalizedError
from slp_lightning.outputs.files import (
    RECONSTRUCTIONS,
    report,
    sheet_captions,
    write_atlas,
    write_png,
    write_results,
    write_sheet,
    write_visual_results,
)


def stopping_signal(exception: BaseException) -> str | None:
    """``SIGINT`` or ``SIGTERM`` when ``exception`` is how Lightning stops a run on that signal."""
    if isinstance(exception, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exception, SIGTERMException):
        return "SIGTERM"
    return None


def _scorer(trainer: pl.Trainer) -> SemanticScore | None:
    return next((c for c in trainer.callbacks if isinstance(c, SemanticScore)), None)


def output_writer(trainer: pl.Trainer, needed_by: str) -> OutputWriter:
    """The Trainer's ``OutputWriter``, whose ``results`` ``needed_by`` reads."""
    writer = next((c for c in trainer.callbacks if isinstance(c, OutputWriter)), None)
    if writer is None:
        raise ValueError(f"{needed_by} need an OutputWriter: its results are read after each run")
    return writer


class OutputWriter(SwitchListener):
    """Write what a run produces, under the logger's run directory (by the first process).

    TensorBoard: the targets once; ``I_r`` and ``I_in`` at every level switch and every
    ``image_every_n_steps``; the quality curves (``board.CURVES``: the normalised error of ``I_r``,
    PSNR and SSIM against the target, an evaluation classifier's scores), the mean and each
    image's, at every switch, every ``metrics_every_n_steps`` and at the end; the run's row of
    the HParams table (its settings and final means) at the end. Files:
    ``reconstructions/<stem>_level<k>.png`` when an image's phase k ends,
    ``reconstructions/<stem>.png`` and ``sheet.png`` at the end, and ``results.json``
    (``outputs.file_stem``: the name, made a safe and unique file name when it is not one).
    The files are also written when the run stops on an error or Ctrl-C, with what was reached
    (with several processes, each then writes its own images and ``results_rank<r>.json``).

    Args:
        image_every_n_steps: how often ``I_r`` and ``I_in`` go to TensorBoard between switches.
        save_target_features: also write ``target_features.pt`` at the start: the targets'
            features, name → tensor, which ``--data.features`` inverts without the images.
        metrics_every_n_steps: how often the quality curves go to TensorBoard between switches
            (``None``: as often as the images).
        natural_images: a visualisation's natural photographs (a file, folder or glob): each
            row's activation is given as a share of the best of them, and its ``strongest`` are
            shown beside it in the atlas; ``None``: the reference photographs, none shown.
        strongest: how many of ``natural_images`` the atlas shows per row.
    """

    def __init__(
        self,
        image_every_n_steps: int = 100,
        save_target_features: bool = False,
        metrics_every_n_steps: int | None = None,
        natural_images: str | None = None,
        strongest: int = 3,
    ) -> None:
        check_range(image_every_n_steps, "OutputWriter.image_every_n_steps", low=1, integer=True)
        check_range(
            metrics_every_n_steps, "OutputWriter.metrics_every_n_steps", low=1, integer=True
        )
        self.image_every_n_steps = image_every_n_steps
        self.metrics_every_n_steps = metrics_every_n_steps or image_every_n_steps
        self.save_target_features = save_target_features
        check_range(strongest, "OutputWriter.strongest", low=0, integer=True)
        self.natural_images, self.strongest = natural_images, strongest
        self._finest_on: Tensor | None = None
        self._images_step = self._curves_step = -1  # the last steps logged to TensorBoard
        self.run_dir: Path | None = None
        #: what ``results.json`` holds, once the run has ended (on the first process; after an
        #: exception, on every process, what it wrote: see ``results_file``)
        self.results: dict | None = None
        self.results_file: Path | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # trainer.log_dir is a collective: read it once, here, on every process.
        self.run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        inversion = pl_module.inversion
        self._finest_on = pl_module.schedule.finest_on.clone()
        targets = None if inversion.targets is None else pl_module.gather(inversion.targets)
        features = (
            pl_module.gather(inversion.target_features)
            if self.save_target_features and inversion.target_features is not None
            else None
        )
        board = tensorboard(trainer)
        if board is not None:
            if targets is not None:
                board.add_images("targets", targets, 0)
            board.add_text("weights", inversion.network.weights, 0)
        if trainer.is_global_zero and features is not None:
            write_features(self.run_dir / TARGET_FEATURES, pl_module.names, features)

    def on_pyramid_switch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The PNG of each phase that ended, and the images to TensorBoard (every process takes
        part: the gathers are collective)."""
        finest_on = pl_module.schedule.finest_on
        ended_levels = pl_module.gather(
            torch.where(finest_on != self._finest_on, self._finest_on, 0)
        )
        self._finest_on = finest_on.clone()
        I_r = self._log_images(trainer, pl_module)
        self._log_curves(trainer, pl_module)
        if trainer.is_global_zero:
            for row in torch.nonzero(ended_levels).flatten().tolist():
                write_png(I_r[row], self.run_dir, pl_module.names[row], int(ended_levels[row]))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        step = trainer.global_step
        if step % self.image_every_n_steps == 0 and self._images_step != step:
            self._log_images(trainer, pl_module)
        if step % self.metrics_every_n_steps == 0 and self._curves_step != step:
            self._log_curves(trainer, pl_module)

    def _log_curves(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Every process's quality measures to TensorBoard (a collective)."""
        self._curves_step = trainer.global_step
        measures = {k: pl_module.gather(v) for k, v in pl_module.inversion.evaluate().items()}
        scorer = _scorer(trainer)
        measures |= (scorer.scores(pl_module) or {}) if scorer is not None else {}
        board = tensorboard(trainer)
        if board is not None:
            log_curves(board, trainer.global_step, pl_module.names, measures)

    def _log_images(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Tensor:
        """Every process's ``I_r`` and ``I_in`` to TensorBoard (a collective); returns ``I_r``."""
        images = pl_module.inversion.images(pl_module.schedule.finest_on)
        I_r, I_in = (pl_module.gather(x.detach()) for x in images)
        self._images_step = trainer.global_step
        board = tensorboard(trainer)
        if board is not None:
            board.add_images("I_r", I_r, trainer.global_step)
            board.add_images("I_in", I_in, trainer.global_step)
        return I_r

    def _write_pngs(self, I_r: Tensor, names: list[str], levels: Tensor) -> None:
        """The final image of each target, also as the end of the phase it was in."""
        for image, name, level in zip(I_r, names, levels.tolist()):
            write_png(image, self.run_dir, name)
            write_png(image, self.run_dir, name, level)

    def _end_visualisation(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, status: str
    ) -> None:
        """A visualisation's PNGs, ``results.json`` (``outputs.write_visual_results``) and atlas
        (``sheet.png``): each row's activation against the best of the natural photographs
        (``natural_images``, else the reference ones), an independent classifier's labels, and,
        with ``natural_images``, each row's ``strongest`` photographs beside it (every process
        must call: the rows are gathered)."""
        inversion, schedule, gather = pl_module.inversion, pl_module.schedule, pl_module.gather
        I_r = gather(inversion.reconstruction().detach())
        levels, switch_steps = gather(schedule.finest_on), gather(schedule.switch_steps)
        activation = gather(inversion.evaluate()["activation"])
        photos = reference_images(
            self.natural_images or pl_module.hparams.reference_images, inversion.image_size,
            inversion.network.in_channels,
        )  # fmt: skip
        natural = gather(
            natural_activations(inversion.objective, inversion.network, photos).to(pl_module.device)
        ).cpu()
        scorer = _scorer(trainer)
        labels = scorer.visual_labels(trainer, pl_module) if scorer is not None else None
        if not trainer.is_global_zero:
            return
        self._write_pngs(I_r, pl_module.names, levels)
        self.results_file = self.run_dir / "results.json"
        self.results = write_visual_results(
            self.results_file, pl_module.settings(), pl_module.names, pl_module.row_objectives,
            activation.cpu(), natural, levels, switch_steps, trainer.global_step, status, labels,
        )  # fmt: skip
        strongest = None
        if self.natural_images and self.strongest:
            order = natural.argsort(dim=1, descending=True)[:, : self.strongest]
            strongest = {
                name: [photos[i] for i in order[row].tolist()]
                for row, name in enumerate(pl_module.names)
            }
        write_atlas(self.results, self.run_dir, strongest)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.visualises:
            self._end_visualisation(trainer, pl_module, "finished")
            board = tensorboard(trainer)
            if board is not None:
                settings = {
                    **pl_module.settings(),
                    "max_steps": trainer.max_steps,
                    "precision": str(trainer.precision),
                }
                log_hparams(board, settings, self.results, trainer.global_step)
            return
        inversion, schedule, gather = pl_module.inversion, pl_module.schedule, pl_module.gather
        I_r = gather(inversion.reconstruction().detach())
        levels = gather(schedule.finest_on)
        # Synchronised over this Trainer's processes only: a dealt chunk's process is one of
        # several in the process group, yet its run is a one-process run.
        metric = NormalizedError(
            inversion.n_f, distributed_available_fn=lambda: trainer.world_size > 1
        )
        metric = metric.to(pl_module.device)
        errors = {k: gather(v) for k, v in inversion.evaluate(metric).items()}
        targets = None if inversion.targets is None else gather(inversion.targets)
        switch_steps = gather(schedule.switch_steps)
        mean_normalized_error = metric.compute().item()  # a collective: every process's images
        scorer = _scorer(trainer)
        scores = scorer.measure(trainer, pl_module) if scorer is not None else None  # a collective
        if trainer.is_global_zero:
            self._write_pngs(I_r, pl_module.names, levels)
            self.results_file = self.run_dir / "results.json"
            self.results = write_results(
                self.results_file, pl_module.settings(), inversion.n_f, pl_module.names, errors, levels,
                switch_steps, trainer.global_step, "finished", mean_normalized_error, scores,
                pl_module.utility, pl_module.utility_about,
            )  # fmt: skip
            captions = sheet_captions(self.results)
            write_sheet(targets, pl_module.names, inversion.pyramid.levels, self.run_dir, captions)
        board = tensorboard(trainer)
        if board is not None:
            if self._curves_step != trainer.global_step:  # their last points: results.json's
                final = errors | ((scorer.final_scores or {}) if scorer is not None else {})
                log_curves(board, trainer.global_step, pl_module.names, final)
            settings = {
                **pl_module.settings(),
                "max_steps": trainer.max_steps,
                "precision": str(trainer.precision),
            }
            log_hparams(board, settings, self.results, trainer.global_step)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        inversion, schedule = pl_module.inversion, pl_module.schedule
        if self.run_dir is None or inversion.I_pre is None:
            return  # failed before the run started: nothing reached yet
        signal_name = stopping_signal(exception)
        status = (
            f"interrupted: {signal_name}" if signal_name
            else f"failed: {type(exception).__name__}: {exception}"
        )  # fmt: skip
        if pl_module.visualises:
            if trainer.world_size == 1:  # else: no collectives, other processes may be gone
                self._end_visualisation(trainer, pl_module, status)
            return
        # No collectives here: other processes may be gone. Each writes its own images.
        names = pl_module.local_names
        self._write_pngs(inversion.reconstruction().detach(), names, schedule.finest_on)
        utility = pl_module.utility
        if utility is not None:
            utility = utility[[pl_module.names.index(name) for name in names]]
        name = (
            "results.json" if trainer.world_size == 1 else f"results_rank{trainer.global_rank}.json"
        )
        self.results_file = self.run_dir / name
        self.results = write_results(
            self.results_file, pl_module.settings(), inversion.n_f, names, inversion.evaluate(),
            schedule.finest_on, schedule.switch_steps, trainer.global_step, status,
            utility=utility, utility_about=pl_module.utility_about,
        )  # fmt: skip
        if trainer.world_size == 1:
            captions = sheet_captions(self.results)
            write_sheet(inversion.targets, names, inversion.pyramid.levels, self.run_dir, captions)

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
        noun = "visualisation" if "objective" in results else "image"
        headline = f"{count} {noun}{'s' if count != 1 else ''}, {results['steps']} steps ({results['status']})"
        return report(
            headline, results, {k: v for k, v in files.items() if v.exists()}, self.run_dir
        )
