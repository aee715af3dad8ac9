"""Diversity across the batch (Lucid's ``diversity``): rows pushed apart in style."""

from __future__ import annotations

import torch
from torch import Tensor

from slp_lightning.objectives.base import Term


class Diversity(Term):
    """Minus each row's mean cosine similarity to the other rows of the Gram matrices of their
    features (M, C, …): larger when the rows differ in which channels fire together. Its weight
    is the argument (``diversity:0.5``); with one row it is 0."""

    name, argument, index, across_rows = "diversity", None, False, True
    meaning = "minus the mean cosine similarity of the row's Gram matrix to the others'"

    def value(self, features: Tensor, parameters: list) -> Tensor:
        count = len(features)
        if count < 2:
            return features.new_zeros(count)
        a = features.flatten(2) if features.dim() > 2 else features[..., None]
        gram = torch.einsum("mcp,mdp->mcd", a, a).flatten(1)
        gram = gram / gram.norm(dim=1, keepdim=True).clamp(min=1e-8)
        similar = gram @ gram.T
        off = similar.sum(dim=1) - similar.diagonal()
        return -off / (count - 1)
