"""Transformation robustness (Lucid's ``transform``): the image is padded, shifted, scaled and
turned at random before the network sees it, at every step, so that what is maximised does not
hang on exact pixel positions. Differentiable, on the device, drawn per image from a seeded
generator (a run's seed gives the same draws).

``lucid`` is Lucid's standard set: pad 12, jitter 8, scale 0.90–1.10, rotate ±10°, jitter 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from slp_lightning.errors import ArgumentError, check_range

LUCID = ("pad:12", "jitter:8", "scale:0.1", "rotate:10", "jitter:4")
KINDS = {
    "pad": "px of grey around",
    "jitter": "px of random shift",
    "scale": "random scale 1 ± S",
    "rotate": "random turn ± D°",
}
TransformSpec = str | list[str] | None


@dataclass
class Transforms:
    """The transforms of ``steps`` (``pad:P``, ``jitter:J``, ``scale:S``, ``rotate:D``), in
    order: the pad, then one random affine map per image (the shifts summed, the scales and turns
    about the centre), sampled bilinearly; jitter crops the image as Lucid's does."""

    steps: tuple[str, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        self.pad = self.jitter = 0
        self.scale = self.rotate = 0.0
        for step in self.steps:
            kind, _, amount = step.partition(":")
            if kind not in KINDS or not amount:
                raise ArgumentError(
                    f"unknown transform {step!r}; valid: none, lucid, or a list of "
                    f"{', '.join(f'{k}:N' for k in KINDS)}",
                    "FeatureInversion.transforms",
                )
            try:
                value = float(amount)
            except ValueError:
                raise ArgumentError(
                    f"transform {step!r}: {amount!r} is no number", "FeatureInversion.transforms"
                ) from None
            integer = kind in ("pad", "jitter")
            check_range(int(value) if integer and value.is_integer() else value, "FeatureInversion.transforms",
                        low=0, high=1 if kind == "scale" else None, integer=integer, high_open=kind == "scale",
                        meaning=f"{kind}, {KINDS[kind]}")  # fmt: skip
            if kind == "pad":
                self.pad += int(value)
            elif kind == "jitter":
                self.jitter += int(value)
            elif kind == "scale":
                self.scale = value
            else:
                self.rotate = value
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, images: Tensor) -> Tensor:
        """``images`` (N, C, S, S) transformed: (N, C, S + 2·pad − jitter, …)."""
        count, _, height, width = images.shape
        if self.pad:
            images = F.pad(images, (self.pad,) * 4, value=0.5)
        padded_h, padded_w = images.shape[-2:]
        out_h, out_w = padded_h - self.jitter, padded_w - self.jitter
        if out_h < 1 or out_w < 1:
            raise ArgumentError(
                f"transforms: jitter {self.jitter} px leaves nothing of {height} px images",
                "FeatureInversion.transforms",
            )
        draws = torch.rand(count, 4, generator=self.generator)
        scale = 1 + self.scale * (2 * draws[:, 0] - 1)
        angle = math.radians(self.rotate) * (2 * draws[:, 1] - 1)
        shift = self.jitter * (draws[:, 2:] - 0.5)  # the crops' offsets about the centre, px
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        # Output pixel centres (px, about the centre) -> input pixel centres -> [-1, 1].
        ys = torch.arange(out_h) + 0.5 - out_h / 2
        xs = torch.arange(out_w) + 0.5 - out_w / 2
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        x_in = cos[:, None, None] * x - sin[:, None, None] * y + shift[:, 0, None, None]
        y_in = sin[:, None, None] * x + cos[:, None, None] * y + shift[:, 1, None, None]
        grid = torch.stack([x_in / (padded_w / 2), y_in / (padded_h / 2)], dim=-1)
        grid = grid.to(images.device, images.dtype)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="border", align_corners=False
        )

    def state(self) -> Tensor:
        """The generator's state, for a checkpoint (a resume draws what the run would have)."""
        return self.generator.get_state()

    def restore(self, state: Tensor) -> None:
        self.generator.set_state(state)


def build_transforms(spec: TransformSpec, seed: int = 0) -> Transforms | None:
    """``none`` or ``None`` (no transforms), ``lucid`` (``LUCID``), or a list of steps."""
    if spec is None or spec == "none" or spec == []:
        return None
    steps = LUCID if spec == "lucid" else (spec,) if isinstance(spec, str) else tuple(spec)
    return Transforms(tuple(steps), seed)
