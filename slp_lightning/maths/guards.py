"""What stops a run whose numbers went wrong: a non-finite loss or gradient, recorded on the device
at every step and read by the host every few steps (``FiniteWatch``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradient stopped being finite; ``I_pre`` stays finite."""


class FiniteWatch(nn.Module):
    """Where each image's loss or gradient of ``I_pre`` first stopped being finite, recorded on the
    device at every step without the host reading anything (``loss``, ``gradient``: a non-finite
    gradient entry is zeroed, so ``I_pre`` stays finite), and read by the host only when asked
    (``check``): every ``PyramidSwitch.check_every_n_steps`` steps."""

    def __init__(self, count: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.register_buffer(
            "first_loss", torch.full((count,), -1, device=device), persistent=False
        )
        self.register_buffer(
            "first_gradient", torch.full((count,), -1, device=device), persistent=False
        )

    @staticmethod
    def _record(first: Tensor, bad: Tensor, step: int) -> None:
        first.masked_fill_(bad & (first < 0), step)

    def loss(self, Z: Tensor, step: int) -> None:
        """Record the images (N,) whose loss ``Z`` is not finite at ``step``."""
        self._record(self.first_loss, ~torch.isfinite(Z.detach()), step)

    def gradient(self, grad: Tensor, step: int, scaled: bool) -> None:
        """Record the images whose gradient (N, …) is not finite at ``step`` and zero those
        entries, unless a gradient scaler owns overflow (``scaled``: float16 skips that step and
        lowers its scale)."""
        if scaled:
            return
        self._record(self.first_gradient, ~torch.isfinite(grad).flatten(1).all(dim=1), step)
        torch.nan_to_num_(grad, nan=0.0, posinf=0.0, neginf=0.0)

    def check(self, names: list[str]) -> None:
        """Stop with the first step an image's loss or gradient stopped being finite (a host
        read: one per check)."""
        for first, what in [
            (self.first_loss, "the loss"),
            (self.first_gradient, "the gradient of I_pre"),
        ]:
            bad = first >= 0
            if bad.any():
                step = int(first[bad].min())
                rows = torch.nonzero(bad).flatten().tolist()
                raise NonFiniteLossError(
                    f"{what} became non-finite at step {step} for image(s) {[names[i] for i in rows]}; "
                    f"I_pre stays finite (its non-finite gradients are never applied)"
                )
