"""What a run shows in TensorBoard besides Lightning's loss curves: images, quality curves (the
mean and each image's) and the HParams row of its settings and final metrics."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from slp_lightning.data.file_names import file_stem

# The curves of a run, by the name its measures have in ``results.json``: the mean under the tag,
# each image's under ``<tag>/<image>`` (its file stem), so that one image's curves can be followed.
CURVES = {
    "normalized_error": "error/normalized",
    "psnr": "image/psnr",
    "ssim": "image/ssim",
    "top1_agreement": "semantic/top1_agreement",
    "p_target_class": "semantic/p_target_class",
    "activation": "visualisation/activation",
}
# The HParams table's metrics: a run's final means, by their results.json names (an audit's
# utility and the error against the clean features besides the curves').
FINAL = "final/"
AUDIT = ("utility", "victim_normalized_error")


def tensorboard(trainer: pl.Trainer) -> SummaryWriter | None:
    """The Trainer's TensorBoard writer, ``None`` without a TensorBoardLogger (and on every process
    but the first, whose writer Lightning never opens)."""
    if not trainer.is_global_zero:
        return None
    return next(
        (log.experiment for log in trainer.loggers if isinstance(log, TensorBoardLogger)), None
    )


def log_curves(
    board: SummaryWriter, step: int, names: list[str], measures: dict[str, Tensor]
) -> None:
    """The mean and each image's value of every measure of ``CURVES`` in ``measures`` (per image,
    (N,), one per ``names``) at ``step``."""
    for measure, tag in CURVES.items():
        if measure not in measures:
            continue
        values = measures[measure].float().cpu()
        board.add_scalar(tag, values.mean().item(), step)
        for name, value in zip(names, values.tolist()):
            board.add_scalar(f"{tag}/{file_stem(name)}", value, step)


def log_hparams(board: SummaryWriter, settings: dict, results: dict, step: int) -> None:
    """The run's row of TensorBoard's HParams table: its ``settings`` and, as metrics, the final
    means of ``results`` (``results.json``'s ``mean_<measure>``), also logged at ``step``."""
    metrics = {
        f"{FINAL}{measure}": results[f"mean_{measure}"]
        for measure in [*CURVES, *AUDIT]
        if results.get(f"mean_{measure}") is not None
    }
    flat = {}
    for key, value in settings.items():  # the threat's fields each a column of their own
        flat |= (
            {f"{key}/{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value}
        )
    shown = {
        key: value if isinstance(value, (bool, int, float, str)) else str(value)
        for key, value in flat.items()
    }
    writer = board._get_file_writer()  # noqa: SLF001 - as Lightning's own TensorBoardLogger writes hparams
    for summary in hparams(shown, metrics):
        writer.add_summary(summary)
    for tag, value in metrics.items():
        board.add_scalar(tag, value, step)
