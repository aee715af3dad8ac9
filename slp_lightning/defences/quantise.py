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

    An attacker who knows it reads a level as the bin of values it stands for: its data term is
    the distance of its features to those bins (zero inside), ``‖max(lo − f, 0) + max(f − hi,
    0)‖`` with ``[lo, hi]`` the bin of each observed level, cut to the range. The range and the
    bin width follow from the observation itself: its smallest and largest levels are the range's
    ends."""

    name = "quantise"
    strength_name = "bits"
    OPTIONS = {"per_channel": False}

    def check(self) -> None:
        check_range(
            self.strength, "FeatureInversion.defence", low=1, high=16, integer=True,
            meaning="quantise:BITS, the bits of each value",
        )  # fmt: skip

    def check_features(self, shape: tuple[int, ...]) -> None:
        check_channels(self, shape)

    def _range(self, values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The smallest and largest value per target (or channel) and the levels' spacing."""
        dims = statistic_dims(values, self.options["per_channel"])
        low, high = values.amin(dim=dims, keepdim=True), values.amax(dim=dims, keepdim=True)
        return low, high, (high - low) / (2 ** int(self.strength) - 1)

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        low, high, step = self._range(features)
        safe = torch.where(step > 0, step, torch.ones_like(step))  # a flat channel stays as it is
        levels = ((features - low) / safe).round()
        return torch.where(step > 0, low + levels * step, features)

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        low, high, step = self._range(observed)
        below = torch.maximum(observed - step / 2, low)
        above = torch.minimum(observed + step / 2, high)
        outside = (below - features).clamp(min=0) + (features - above).clamp(min=0)
        return outside.flatten(1).norm(dim=1)
