"""What every inversion method is: where the pyramid starts, and the loss of each image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor


@dataclass(frozen=True)
class MethodSettings:
    """The model's settings a method may read (``FeatureInversion``'s arguments, resolved)."""

    layer: str
    compactness: float
    tv_weights: tuple[float, float] | None = None


class InversionMethod:
    """One way to invert features. The image is always ``I_r = σ(I_pre)`` and ``I_in`` its
    switched Laplacian pyramid; a method says which levels are on at the start and how the loss
    of each image is made from the features of ``I_in``.

    Subclass it in a module of ``slp_lightning/methods/`` and add one line to ``METHODS`` there.
    """

    #: the name on the command line (``--model.method``), in outputs and sweeps.
    name: ClassVar[str]
    #: True: only the coarsest level is on at the start and ``PyramidSwitch`` turns finer ones on
    #: as the optimisation converges (λ_D and K then mean something; sweeps vary them). False:
    #: every level is on from the start, so ``I_in = I_r``.
    coarse_to_fine: ClassVar[bool] = False

    def __init__(self, settings: MethodSettings) -> None:
        self.settings = settings

    def loss(self, E: Tensor, D: Tensor, features: Tensor, target: Tensor, I_r: Tensor) -> Tensor:
        """The loss ``Z`` per image (N,), from ``E = ‖f(I_in) − f(I)‖₂``, ``D = ‖I_r − I_in‖₂``,
        the features of ``I_in``, the target features and ``I_r``; all float32."""
        raise NotImplementedError
