"""Uniform quantisation of the sent features to a few bits, with the range sent beside them as a
real client would (the integers alone mean nothing)."""

from __future__ import annotations

import torch
from torch import Tensor

from slp_lightning.defences.base import Defence, check_channels, statistic_dims
from slp_lightning.errors import check_range


class Quantise(Defence):
    """``2^bits`` levels evenly spaced from the smallest to the largest value of the target's
    features (``per_channel``: of each channel's); each value is sent as its nearest level, and
    the attacker observes the levels (the integers and the range dequantised).

    An attacker who knows it reads a level as the bin of values it stands for, and each bin as
    the value it holds on average: ``calibrate`` quantises the attacker's own features of natural
    images the same way and keeps, per channel and level, the mean position of the true values in
    the range. Its data term is the distance to those means, ``‖f − (lo + m[c, q]·(hi − lo))‖``;
    uncalibrated, to the bins, zero inside them (on the tuning set the bins alone left too much
    free and lost 0.5 dB to taking the levels at face value; benchmarks/RESULTS.md). The range
    follows from the observation itself: its smallest and largest levels are the range's ends."""

    name = "quantise"
    strength_name = "bits"
    OPTIONS = {"per_channel": False}

    def check(self) -> None:
        check_range(
            self.strength, "FeatureInversion.defence", low=1, high=16, integer=True,
            meaning="quantise:BITS, the bits of each value",
        )  # fmt: skip
        self.means: Tensor | None = None  # (C, levels): the mean position of each level's values

    def check_features(self, shape: tuple[int, ...]) -> None:
        check_channels(self, shape)

    @property
    def levels(self) -> int:
        return 2 ** int(self.strength)

    def _range(self, values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The smallest and largest value per target (or channel) and the levels' spacing."""
        dims = statistic_dims(values, self.options["per_channel"])
        low, high = values.amin(dim=dims, keepdim=True), values.amax(dim=dims, keepdim=True)
        return low, high, (high - low) / (self.levels - 1)

    def _level(self, values: Tensor, low: Tensor, step: Tensor) -> Tensor:
        """Each value's level (long), 0 for a flat target or channel."""
        safe = torch.where(step > 0, step, torch.ones_like(step))
        return ((values - low) / safe).round().clamp(0, self.levels - 1).long()

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        low, high, step = self._range(features)
        level = self._level(features, low, step)
        return torch.where(step > 0, low + level * step, features)  # a flat channel stays as it is

    def calibrate(self, references: Tensor) -> None:
        if references.dim() < 2:
            return
        low, high, step = self._range(references)
        level = self._level(references, low, step)
        position = (references - low) / torch.where(high > low, high - low, torch.ones_like(high))
        channels = references.shape[1]
        channel = torch.arange(channels).view(1, -1, *[1] * (references.dim() - 2)).expand_as(level)
        index = (channel * self.levels + level).flatten()
        total = torch.zeros(channels * self.levels).index_add_(0, index, position.flatten())
        count = torch.zeros(channels * self.levels).index_add_(
            0, index, torch.ones_like(position).flatten()
        )
        centres = torch.linspace(0, 1, self.levels).repeat(channels)
        self.means = torch.where(count > 0, total / count.clamp(min=1), centres).view(
            channels, self.levels
        )

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        low, high, step = self._range(observed)
        if (
            self.means is not None
            and observed.dim() >= 2
            and observed.shape[1] == self.means.shape[0]
        ):
            level = self._level(observed, low, step)
            means = self.means.to(observed.device)
            channel = torch.arange(observed.shape[1], device=observed.device)
            channel = channel.view(1, -1, *[1] * (observed.dim() - 2)).expand_as(level)
            expected = low + means[channel, level] * (high - low)
            return (features - torch.where(step > 0, expected, observed)).flatten(1).norm(dim=1)
        below = torch.maximum(observed - step / 2, low)
        above = torch.minimum(observed + step / 2, high)
        outside = (below - features).clamp(min=0) + (features - above).clamp(min=0)
        return outside.flatten(1).norm(dim=1)
