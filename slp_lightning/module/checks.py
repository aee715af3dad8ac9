"""What the Lightning module checks of its run beside the maths' guards: a Trainer precision
that would cast ``I_pre``, and a start the network sees no structure in."""

from __future__ import annotations

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


def warn_if_flat(grad: Tensor) -> None:
    """Warn when some image's gradient is exactly zero (at the start: a flat image)."""
    if (grad.flatten(1).abs().amax(dim=1) == 0).any():
        rank_zero_warn(
            "the gradient of I_pre is exactly zero at the start for some images: the network "
            "sees no structure in a flat image (dense SIFT does this). Start from noise with "
            "--model.init_noise 0.1"
        )
