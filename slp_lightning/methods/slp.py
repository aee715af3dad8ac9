"""The paper's method: a switched Laplacian pyramid, coarse levels first (Singh & Namboodiri)."""

from __future__ import annotations

from torch import Tensor

from slp_lightning.methods.base import InversionMethod


class SwitchedPyramid(InversionMethod):
    """``Z = E + λ_D·D``, starting with only the coarsest of K levels on."""

    name = "slp"
    coarse_to_fine = True

    def loss(self, E: Tensor, D: Tensor, observed: Tensor, I_r: Tensor) -> Tensor:
        return E + self.settings.compactness * D
