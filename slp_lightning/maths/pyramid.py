"""The image model of the paper: range constraint and switched Laplacian pyramid.

Plain PyTorch, usable without Lightning. Images are (N, C, H, W) tensors in [0, 1]; every feature
network maps [0, 1] onto its own input range, so the range constraint ``I_r = 2B·σ(I_pre) − B`` is
taken with B = ½ and shifted by ½: ``I_r = σ(I_pre)``.

Pyramid levels are numbered as in the paper: level 1 is the finest band-pass level, level K the
low-pass residual. Switches are per image: ``finest_on[n] = j`` keeps levels j..K of image n on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Burt & Adelson's generating kernel with a = 0.375, i.e. the binomial [1, 4, 6, 4, 1] / 16.
_BURT_ADELSON = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def range_constraint(I_pre: Tensor) -> Tensor:
    """Map the free variable ``I_pre`` (any real values) to an image ``I_r`` in (0, 1)."""
    return torch.sigmoid(I_pre)


def check_pyramid_size(height: int, width: int, levels: int) -> None:
    """Raise ``ValueError`` unless a (height, width) image has a coarsest level of at least 2 px."""
    if levels < 1:
        raise ValueError(f"pyramid_levels must be at least 1, got {levels}")
    needed = 2 ** (levels - 1)
    if min(height, width) < 2 * needed:
        raise ValueError(
            f"an image of {height}x{width} px is too small for a {levels}-level Laplacian pyramid: "
            f"each side needs at least {2 * needed} px (the coarsest level must keep 2 px); "
            f"use fewer pyramid levels or larger images"
        )


class LaplacianPyramid(torch.nn.Module):
    """Differentiable K-level Laplacian pyramid with exact recomposition at any image size.

    ``decompose`` returns ``[L_1, …, L_K]`` (finest first, ``L_K`` the low-pass image); sizes halve
    with ceiling, so odd sizes such as 227 need no padding. ``recompose`` inverts it exactly.
    """

    def __init__(self, levels: int = 6) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"pyramid_levels must be at least 1, got {levels}")
        self.levels = levels
        self.register_buffer("kernel", torch.outer(_BURT_ADELSON, _BURT_ADELSON), persistent=False)

    def _weight(self, x: Tensor, gain: float) -> Tensor:
        channels = x.shape[1]
        return (gain * self.kernel).to(x.dtype).expand(channels, 1, 5, 5)

    def reduce(self, x: Tensor) -> Tensor:
        """Blur and subsample: (N, C, H, W) -> (N, C, ⌈H/2⌉, ⌈W/2⌉)."""
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.conv2d(padded, self._weight(x, 1.0), stride=2, groups=x.shape[1])

    def expand(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Upsample (N, C, h, w) to (N, C, *size) by zero insertion and blurring (gain 4).

        The input is padded by one replicated pixel first so that borders keep their brightness.
        """
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(padded, self._weight(x, 4.0), stride=2, groups=x.shape[1])
        # Pixel i of ``x`` sits at i + 1 in ``padded`` and lands on 2i + 2 + tap; tap 2 is the centre.
        return up[..., 4 : 4 + size[0], 4 : 4 + size[1]]

    def decompose(self, image: Tensor, count: int | None = None) -> list[Tensor]:
        """Split (N, C, H, W) into K levels (or ``count``), finest band-pass first, low-pass
        residual last."""
        count = count or self.levels
        check_pyramid_size(image.shape[-2], image.shape[-1], count)
        levels, current = [], image
        for _ in range(count - 1):
            coarser = self.reduce(current)
            levels.append(current - self.expand(coarser, current.shape[-2:]))
            current = coarser
        levels.append(current)
        return levels

    def recompose(self, levels: list[Tensor], switches: Tensor | None = None) -> Tensor:
        """Rebuild the image; ``switches`` (N, K) multiplies each level first (0/1: the sLP)."""
        image = levels[-1] if switches is None else levels[-1] * _per_image(switches[:, -1])
        for k in range(len(levels) - 2, -1, -1):
            band = levels[k] if switches is None else levels[k] * _per_image(switches[:, k])
            image = self.expand(image, band.shape[-2:]) + band
        return image

    def switched(self, image: Tensor, finest_on: Tensor, coarsest: int | None = None) -> Tensor:
        """``I_in = R(ŝ ⊙ L^K(image))`` with levels ``finest_on[n]``..K on for image n (1-based).

        Recomposing levels j..K gives the Gaussian level G_j exactly, so ``I_in`` is G_j expanded
        back to full size: j − 1 reductions and expansions, none at all once every level is on.
        Equal to ``recompose(decompose(image), level_switches(finest_on, K))``. ``coarsest``, the
        largest of ``finest_on`` when the caller knows it, spares reading it from the device.
        """
        # A process with no images of its own (fewer images than processes) has nothing to do.
        if coarsest is None:
            coarsest = int(finest_on.max()) if len(finest_on) else 1
        check_pyramid_size(image.shape[-2], image.shape[-1], self.levels)
        gaussian = [image]
        for _ in range(coarsest - 1):
            gaussian.append(self.reduce(gaussian[-1]))
        I_in = gaussian[-1]
        for level in range(coarsest - 1, 0, -1):  # 1-based level of gaussian[level - 1]
            finer = gaussian[level - 1]
            coarser = _per_image(finest_on > level)  # picked on the device: no host read
            I_in = torch.where(coarser, self.expand(I_in, finer.shape[-2:]), finer)
        return I_in

    def scale_bands(self, x: Tensor, multiples: Tensor) -> Tensor:
        """``x`` (N, C, H, W) split into an m-level pyramid, its levels multiplied by
        ``multiples`` (N, m) per image, finest first (the last the low-pass residual), and
        recomposed: ones return ``x``. m need not be this pyramid's K."""
        return self.recompose(self.decompose(x, multiples.shape[1]), multiples.to(x.dtype))


def level_switches(finest_on: Tensor, levels: int) -> Tensor:
    """Switch matrix (N, K) of 0/1 with ``s[n, k-1] = 1`` for k ≥ ``finest_on[n]`` (1-based k)."""
    k = torch.arange(1, levels + 1, device=finest_on.device)
    return (k[None, :] >= finest_on[:, None]).float()


def _per_image(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)
