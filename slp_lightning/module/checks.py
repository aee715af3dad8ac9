"""What the Lightning module checks of its run beside the maths' guards: an optimiser it cannot
make, a Trainer precision that would cast ``I_pre``, a start the network sees no structure in;
and the default optimiser."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from slp_lightning.errors import ArgumentError, check_range

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


def adam(params) -> torch.optim.Optimizer:  # noqa: ANN001 - an OptimizerCallable
    """The default optimiser: Adam with lr 0.05 on ``I_pre`` (logit units)."""
    return torch.optim.Adam(params, lr=0.05)


def check_optimizer(optimizer: OptimizerCallable) -> None:
    """Refuse, before any step, an optimiser that cannot be made (torch's own sentence) or whose
    learning rate is not above 0, by making it once on a stand-in parameter."""
    try:
        made = optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as error:
        raise ArgumentError(f"optimizer: {error}", "FeatureInversion.optimizer") from None
    lr = made.param_groups[0].get("lr")
    if isinstance(lr, int | float):
        check_range(lr, "FeatureInversion.optimizer.lr", low=0, low_open=True)
