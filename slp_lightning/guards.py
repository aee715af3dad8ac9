"""What stops or warns a run whose numbers would go wrong: a precision that would cast ``I_pre``, a
non-finite loss or gradient, and a start the network sees no structure in."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from slp_lightning.errors import ArgumentError

# "-true" precisions other than 32 would cast I_pre and its optimiser's state.
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def check_precision(precision: str) -> None:
    """Refuse a Trainer precision the inversion cannot run in."""
    if precision not in PRECISIONS:
        raise ArgumentError(
            f"precision {precision!r} is not one an inversion runs in: I_pre, its optimiser and the "
            f"losses stay float32; valid: {', '.join(PRECISIONS)} (mixed precision runs the network "
            f"in 16 bits)",
            "Trainer.precision",
        )


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradient stopped being finite; ``I_pre`` keeps its last finite value."""


def check_loss(Z: Tensor, step: int, names: list[str]) -> None:
    """Stop at ``step`` when an image's loss (``Z``, one per ``names``) is not finite."""
    bad = ~torch.isfinite(Z)
    if bad.any():
        raise NonFiniteLossError(
            f"the loss became non-finite at step {step} for image(s) "
            f"{[names[i] for i in torch.nonzero(bad).flatten().tolist()]}; I_pre keeps its last finite value"
        )


def check_gradient(grad: Tensor, step: int, scaled: bool) -> None:
    """Stop when the gradient of ``I_pre`` is not finite, unless a gradient scaler owns overflow
    (``scaled``: float16 skips that step and lowers its scale); warn when some image's gradient
    is exactly zero at the start."""
    if not scaled and not torch.isfinite(grad).all():
        raise NonFiniteLossError(
            f"the gradient of I_pre became non-finite at step {step}; I_pre keeps its last finite value"
        )
    if step == 0 and (grad.flatten(1).abs().amax(dim=1) == 0).any():
        rank_zero_warn(
            "the gradient of I_pre is exactly zero at the start for some images: the network "
            "sees no structure in a flat image (dense SIFT does this). Start from noise with "
            "--model.init_noise 0.1"
        )
