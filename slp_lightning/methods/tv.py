"""Mahendran & Vedaldi (CVPR 2015): a normalised data term with α-norm and TV^β regularisers."""

from __future__ import annotations

from torch import Tensor

from slp_lightning.maths.losses import tv_loss, tv_weights_for_layer
from slp_lightning.methods.base import InversionMethod, MethodSettings


class TotalVariation(InversionMethod):
    """Every level on from the start; ``Z`` is ``objective.tv_loss`` with ``(λ_α, λ_TV)`` from
    ``--model.tv_weights`` or the layer's defaults."""

    name = "tv"

    def __init__(self, settings: MethodSettings) -> None:
        super().__init__(settings)
        self.weights = settings.tv_weights or tv_weights_for_layer(settings.layer)

    def loss(self, E: Tensor, D: Tensor, observed: Tensor, I_r: Tensor) -> Tensor:
        return tv_loss(E, observed, I_r, self.weights)
