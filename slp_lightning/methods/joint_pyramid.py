"""Lucid's Laplacian-pyramid parametrisation as a baseline: the image is a sum of K tensors at
1, 1/2, …, 1/2^(K−1) of its size, each upsampled to full size, all optimised jointly from the
start (Lucid's ``param.spatial.laplacian_pyramid``): what ``slp`` adds by switching is the rest."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from slp_lightning.maths.pyramid import range_constraint
from slp_lightning.methods.pixel import PixelDescent


class JointPyramid(PixelDescent):
    """``I_r = σ(Σ_k up(L_k))``, ``L_k`` (N, C, S/2^k, S/2^k) for k < K (``pyramid_levels``),
    upsampled bilinearly; ``I_pre`` holds them side by side, flattened: (N, C, Σ_k (S/2^k)²).
    Pixel descent's loss (``Z = E``, or a visualisation's objective), every level on."""

    name = "joint_pyramid"
    pixel_I_pre = False

    def _sides(self, size: int) -> list[int]:
        return [max(1, size >> k) for k in range(self.settings.levels)]

    def initial_I_pre(self, shape: tuple[int, int, int, int], generator: torch.Generator) -> Tensor:
        count, channels, height, width = shape
        if height != width:
            raise ValueError(
                f"the joint_pyramid method takes square images; got {height}x{width} px"
            )
        length = sum(side * side for side in self._sides(height))
        return (
            torch.randn((count, channels, length), generator=generator) * self.settings.init_noise
        )

    def _size(self, length: int) -> int:
        size = 1
        while sum(side * side for side in self._sides(size)) < length:
            size += 1
        return size

    def image(self, I_pre: Tensor) -> Tensor:
        size = self._size(I_pre.shape[-1])
        image, start = 0, 0
        for side in self._sides(size):
            level = I_pre[..., start : start + side * side].unflatten(-1, (side, side))
            start += side * side
            image = image + (
                level
                if side == size
                else F.interpolate(level, size=(size, size), mode="bilinear", align_corners=False)
            )
        return range_constraint(image)

    def scale_contrast(self, I_pre: Tensor, channel: int, scale: Tensor) -> Tensor:
        raise NotImplementedError("joint_pyramid switches nothing: no contrast search")
