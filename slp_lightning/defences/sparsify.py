"""Sending fewer features: the largest ones only (top-k sparsification, channel pruning's kin), or
a random part of them (dropout; GLASS and InferenceBenchmark drop 40–60 %)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from slp_lightning.defences.base import Defence
from slp_lightning.errors import check_range


class TopK(Defence):
    """Keep the ``keep`` share of the target's features largest in magnitude (at least one) and
    send zeros for the rest.

    An attacker who knows it reads a zero as "smaller than every kept value", and as the value
    such features hold on average: ``calibrate`` keeps, per channel, the mean of the attacker's
    own features of natural images that the same defence drops, clipped to ``[−t, t]`` (t the
    smallest magnitude sent). Its data term is the distance to the kept values where something was
    kept and to those means elsewhere; uncalibrated, to ``[−t, t]`` (zero inside: on the tuning set
    that left too much free, 1.2 dB below taking the zeros at face value)."""

    name = "topk"
    strength_name = "keep"

    def check(self) -> None:
        check_range(
            self.strength, "FeatureInversion.defence", low=0, high=1, low_open=True,
            meaning="topk:KEEP, the share of the features kept",
        )  # fmt: skip
        self.dropped_means: Tensor | None = None  # (C,): what a dropped feature holds on average

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        flat = features.flatten(1)
        count = max(1, math.ceil(self.strength * flat.shape[1]))
        kept = flat.abs().topk(count, dim=1).indices
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, kept, True)
        return (flat * mask).view_as(features)

    def calibrate(self, references: Tensor) -> None:
        if references.dim() < 3:
            return
        dropped = (self.observe(references, torch.Generator()) == 0).float()
        dims = (0, *range(2, references.dim()))
        count = dropped.sum(dim=dims)
        self.dropped_means = (references * dropped).sum(dim=dims) / count.clamp(min=1)

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        flat, sent = features.flatten(1), observed.flatten(1)
        kept = sent != 0
        magnitude = sent.abs().where(kept, torch.full_like(sent, torch.inf))
        threshold = magnitude.amin(dim=1, keepdim=True)  # the smallest value sent
        means = self.dropped_means
        if means is not None and observed.dim() >= 3 and observed.shape[1] == len(means):
            shape = (1, -1, *[1] * (observed.dim() - 2))
            expected = means.to(observed.device).view(shape).expand_as(observed).flatten(1)
            expected = torch.minimum(torch.maximum(expected, -threshold), threshold)
            return torch.where(kept, flat - sent, flat - expected).norm(dim=1)
        over = (flat.abs() - threshold).clamp(min=0)
        return torch.where(kept, flat - sent, over).norm(dim=1)


class Dropout(Defence):
    """Send each feature with probability ``1 − p`` and a zero for the rest, the kept ones scaled
    by ``1/(1 − p)`` (``rescale``, as ``nn.Dropout``) or not.

    An attacker who knows it reads a zero as "unknown" (a feature that was zero reads so too): its
    data term is the distance to the sent values, unscaled, over the entries sent, divided by
    √(1 − p) to stand for every entry."""

    name = "dropout"
    strength_name = "p"
    OPTIONS = {"rescale": True}

    def check(self) -> None:
        check_range(
            self.strength, "FeatureInversion.defence", low=0, high=1, high_open=True,
            meaning="dropout:P, the share of the features dropped",
        )  # fmt: skip

    @property
    def _scale(self) -> float:
        return 1 / (1 - self.strength) if self.options["rescale"] else 1.0

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        sent = torch.rand(features.shape, generator=generator) >= self.strength
        return features * sent * self._scale

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        flat, sent = features.flatten(1), observed.flatten(1)
        difference = torch.where(sent != 0, flat - sent / self._scale, torch.zeros_like(flat))
        return difference.norm(dim=1) / math.sqrt(1 - self.strength)
