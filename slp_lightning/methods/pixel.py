"""Plain descent on the pixels (through the same range constraint), the usual baseline."""

from __future__ import annotations

from slp_lightning.methods.slp import SwitchedPyramid


class PixelDescent(SwitchedPyramid):
    """The same loss with every level on from the start: ``I_in = I_r``, so ``D = 0`` and
    ``Z = E``."""

    name = "pixel"
    coarse_to_fine = False
