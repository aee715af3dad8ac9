"""Additive noise on the sent features (Titcombe et al. 2021: Laplace noise on a split network's
features; GLASS and InferenceBenchmark: Gaussian or Laplace noise of a scale σ)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from slp_lightning.defences.base import Defence, check_channels, statistic_dims
from slp_lightning.errors import check_range


class GaussianNoise(Defence):
    """``y = f + σ·s·n`` with n standard Gaussian and s the standard deviation of the target's
    features (``per_channel``: of each channel's), so that σ is relative to the features' own
    spread.

    An attacker who knows it has nothing better than the distance to ``y``: for Gaussian noise
    that is the maximum-likelihood data term. (Not fitting the noise, ``max(‖f − y‖ − E‖n‖,
    0)``, lost 0.9 dB PSNR on the tuning set: many images lie that far from ``y``;
    benchmarks/RESULTS.md.)"""

    name = "noise"
    strength_name = "sigma"
    meaning = "noise:SIGMA, a multiple of the features' std"
    OPTIONS = {"per_channel": False}

    def check(self) -> None:
        check_range(self.strength, "FeatureInversion.defence", low=0, meaning=self.meaning)

    def check_features(self, shape: tuple[int, ...]) -> None:
        check_channels(self, shape)

    def spread(self, features: Tensor) -> Tensor:
        """s: the features' standard deviation per target (or channel), broadcastable."""
        return features.std(dim=statistic_dims(features, self.options["per_channel"]), keepdim=True)

    def sample(self, like: Tensor, generator: torch.Generator) -> Tensor:
        """Unit noise of ``like``'s shape."""
        return torch.randn(like.shape, generator=generator)

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        return features + self.strength * self.spread(features) * self.sample(features, generator)


class LaplaceNoise(GaussianNoise):
    """``y = f + b·s·n`` with n Laplace of unit scale (standard deviation √2), s as for
    ``noise``: the noise of Titcombe et al. An attacker who knows it uses its maximum-likelihood
    data term, the L1 distance ``‖f − y‖₁ / √M`` (M entries: the scale of the L2 distance when
    every entry is off by the same amount), which a few large noise values pull less."""

    name = "laplace"
    strength_name = "scale"
    meaning = "laplace:SCALE, a multiple of the features' std"

    def sample(self, like: Tensor, generator: torch.Generator) -> Tensor:
        # The inverse CDF of a uniform draw in (-1/2, 1/2): -sign(u)·log(1 − 2|u|).
        u = torch.rand(like.shape, generator=generator) - 0.5
        return -u.sign() * torch.log1p(-2 * u.abs().clamp(max=0.5 - 1e-7))

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        difference = (features - observed).flatten(1)
        return difference.abs().sum(dim=1) / math.sqrt(difference.shape[1])
