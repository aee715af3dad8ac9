"""Additive noise on the sent features (Titcombe et al. 2021: Laplace noise on a split network's
features; GLASS and InferenceBenchmark: Gaussian or Laplace noise of a scale σ)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from slp_lightning.defences.base import Defence, check_channels, statistic_dims
from slp_lightning.errors import check_range
from slp_lightning.objective import feature_distance


class GaussianNoise(Defence):
    """``y = f + σ·s·n`` with n standard Gaussian and s the standard deviation of the target's
    features (``per_channel``: of each channel's), so that σ is relative to the features' own
    spread.

    An attacker who knows it does not fit the noise: its data term is the distance beyond the
    noise's expected norm, ``max(‖f − y‖ − σ·s·√M, 0)`` (M entries; s estimated from y itself,
    ``std(y) / √(1 + σ²)``): once a reconstruction is as close as the noise allows, only its
    prior (λ_D, TV) moves it."""

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

    def noise_std(self, observed: Tensor) -> Tensor:
        """The noise's standard deviation per entry, as the attacker estimates it from ``y``."""
        # The noise's variance adds to the features': var(y) = var(f)·(1 + σ²·v), v the unit
        # noise's variance (1; 2 for Laplace).
        variance = self.unit_variance * self.strength**2
        return self.strength * self.spread(observed) / math.sqrt(1 + variance)

    unit_variance = 1.0

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        scale = self.noise_std(observed).expand_as(observed)
        expected = (scale.flatten(1).pow(2) * self.unit_variance).sum(dim=1).sqrt()
        return (feature_distance(features, observed) - expected).clamp(min=0)


class LaplaceNoise(GaussianNoise):
    """``y = f + b·s·n`` with n Laplace of unit scale (standard deviation √2), s as for
    ``noise``: the noise of Titcombe et al. An attacker who knows it does not fit it (``noise``'s
    rule, with the Laplace noise's expected norm)."""

    name = "laplace"
    strength_name = "scale"
    meaning = "laplace:SCALE, a multiple of the features' std"
    unit_variance = 2.0

    def sample(self, like: Tensor, generator: torch.Generator) -> Tensor:
        # The inverse CDF of a uniform draw in (-1/2, 1/2): -sign(u)·log(1 − 2|u|).
        u = torch.rand(like.shape, generator=generator) - 0.5
        return -u.sign() * torch.log1p(-2 * u.abs().clamp(max=0.5 - 1e-7))
