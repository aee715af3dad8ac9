"""The switched pyramid on Lucid's image priors: the paper's schedule and loss with ``I_pre``
either Lucid's 1/f-scaled spectrum in decorrelated colour, or pixels in decorrelated colour only.

The pyramid acts on ``I_r`` whatever ``I_pre`` is, so each is the ``slp`` loss
(``Z = E + λ_D·D``, coarsest level first) on another parametrisation; nothing is copied."""

from __future__ import annotations

from torch import Tensor

from slp_lightning.maths.pyramid import range_constraint
from slp_lightning.methods.fft import FourierImage, decorrelated_colour
from slp_lightning.methods.slp import SwitchedPyramid


class SwitchedFourier(FourierImage):
    """``fft``'s ``I_pre`` and image (spectrum × 1/f, decorrelated colour, σ) under ``slp``'s
    schedule: ``FourierImage`` inherits ``slp``'s loss, and only the switches come back on.

    With Adam's default ``eps`` (1e-8) it loses to both: in the coarse phases the fine
    frequencies get only what leaks through the pyramid (10⁻³–10⁻⁴ of the coarse ones' gradient),
    which Adam's per-entry normalisation turns into full steps, and its state carries that over
    the switch (even at ``coarse_lr`` 1e-6). ``--model.optimizer.eps 1e-3`` ignores such leaks
    (benchmarks/RESULTS.md, 2026-12-02)."""

    name = "slp_fft"
    coarse_to_fine = True


class SwitchedColour(SwitchedPyramid):
    """``slp`` on pixels whose three channels are ImageNet's decorrelated colours (brightness
    first): ``I_r = σ(COLOR_BASIS · I_pre)``. Adam's equal steps per entry then change chroma
    3.6 and 7.5 times less than brightness (the basis' column norms), Lucid's colour prior without its
    spectrum. One channel (grey networks) is plain ``slp``."""

    name = "slp_color"

    def image(self, I_pre: Tensor) -> Tensor:
        return range_constraint(decorrelated_colour(I_pre))
