"""Dense SIFT of Jia, Huang & Darrell (CVPR 2012), the ``dsift.py`` of the iceberk pipeline.

A differentiable port: every step is a fixed convolution or an elementwise op, so the
descriptors can be inverted by gradient descent like any other feature network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slp_lightning.networks.base import FeatureNetwork

__all__ = ["INPUT_SIZE", "LAYERS", "DenseSIFT", "build_dsift"]

INPUT_SIZE = 128  # the paper: 128×128 images give 15×15×128 descriptors
LAYERS = ("descriptors",)

_SIGMA = 1.0  # scale of the derivative-of-Gaussian gradient filters
_ALPHA = 9  # exponent that sharpens the soft orientation vote cos(theta - a)^alpha
# Floor of the gradient magnitude in the orientation vote's denominator: pixels with no gradient
# then vote 0/1e-12 = 0 with finite gradients instead of 0/0; its square is still a normal float32.
_MIN_MAGNITUDE = 1e-12


def _derivative_taps(sigma: float) -> Tensor:
    """(1, half, 2·half+1) taps of the d/d(col) derivative-of-Gaussian filter.

    The true convolution with the antisymmetric kernel equals
    IW[i, j] = sum_{d=1..half, r} taps[0, d-1, r]·(I[i+r-half, j+d] - I[i+r-half, j-d]),
    and d/d(row) uses the same taps transposed, as the Gaussian is symmetric.
    """
    half = 2 * math.ceil(sigma)
    r = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    _, gw = torch.gradient(g / g.sum())
    gw = 2 * gw / gw.abs().sum()
    return gw[:, :half].flip(1).T.unsqueeze(0)


def _pooling_kernels(patch_size: int, num_cells: int) -> Tensor:
    """(cells², 1, patch, patch) bilinear cell weights, index cell_row·cells + cell_col."""
    cell = patch_size / num_cells
    p = torch.arange(patch_size, dtype=torch.float64)
    centres = (torch.arange(num_cells, dtype=torch.float64) + 0.5) * cell - 0.5
    w = (1 - (p[None, :] - centres[:, None]).abs() / cell).clamp(min=0)  # (cells, patch)
    return (w[:, None, :, None] * w[None, :, None, :]).reshape(num_cells**2, 1, patch_size, -1)


def _mirror_differences(padded: Tensor, dim: int, size: int) -> Tensor:
    """(M, 1, ...) image padded by half -> (M, half, ...) differences I[x + d] - I[x - d] along dim.

    Filtering these rather than the image makes flat regions exactly zero: a kernel whose taps
    sum to zero only up to rounding would leave ~1e-8 of noise there, hence random orientations.
    """
    half = (padded.shape[dim] - size) // 2
    return torch.cat(
        [
            padded.narrow(dim, half + d, size) - padded.narrow(dim, half - d, size)
            for d in range(1, half + 1)
        ],
        dim=1,
    )


class DenseSIFT(nn.Module):
    """SIFT descriptors on a dense grid: images (N, C, H, W) in [0, 1] -> (N, D, h, w).

    Grey mode (``color=False``) describes the mean of the channels, D = cells²·angles = 128.
    Colour mode describes R, G and B separately and concatenates them (R first), D = 384; a
    single-channel input is replicated to RGB. Patches of ``patch_size`` px every ``stride`` px,
    the grid centred in the image: a 128×128 image gives 15×15 descriptors. Channel index is
    (cell_row·cells + cell_col)·angles + angle. Each descriptor has L2 norm 1 when its raw norm
    reaches ``contrast_threshold`` and keeps a smaller norm otherwise (the paper's contrast
    thresholding); entries lie in [0, 1].

    The output is float64 for float64 input and float32 otherwise: half-precision input and
    autocast regions are computed in float32. The module has buffers only, no parameters.
    """

    def __init__(
        self,
        color: bool = False,
        patch_size: int = 16,
        stride: int = 8,
        num_angles: int = 8,
        num_cells: int = 4,
        contrast_threshold: float = 1.0,
        clip: float = 0.2,
    ) -> None:
        super().__init__()
        if patch_size % num_cells:
            raise ValueError(f"patch_size {patch_size} is not divisible by num_cells {num_cells}")
        if contrast_threshold <= 0 or clip <= 0:
            raise ValueError(
                f"contrast_threshold and clip must be positive, got {contrast_threshold}, {clip}"
            )
        self.color = color
        self.patch_size = patch_size
        self.stride = stride
        self.contrast_threshold = contrast_threshold
        self.clip = clip
        angles = torch.arange(num_angles, dtype=torch.float64) * (2 * math.pi / num_angles)
        # Rows (sin a, cos a) applied to (IH, IW) give mag·cos(theta - a) without atan2.
        directions = torch.stack([angles.sin(), angles.cos()], dim=1)[:, :, None, None]
        # float32 buffers so the module can move to devices without float64; forward casts them.
        self.register_buffer("derivative_taps", _derivative_taps(_SIGMA).float(), persistent=False)
        self.register_buffer("directions", directions.float(), persistent=False)
        self.register_buffer(
            "pooling_kernels", _pooling_kernels(patch_size, num_cells).float(), persistent=False
        )

    def extra_repr(self) -> str:
        return f"color={self.color}, patch_size={self.patch_size}, stride={self.stride}"

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"expected floating-point images in [0, 1], got {images.dtype}")
        n, c, h, w = images.shape
        if c not in (1, 3):
            raise ValueError(
                f"DenseSIFT(color={self.color}) accepts 1 or 3 channels, got {c}"
                " (colour mode replicates 1 channel to RGB, grey mode averages 3)"
            )
        if h < self.patch_size or w < self.patch_size:
            raise ValueError(
                f"images must be at least {self.patch_size}x{self.patch_size} px, got {h}x{w}"
            )
        if torch.finfo(images.dtype).bits < 32:
            images = images.float()
        x = images.expand(n, 3, h, w) if self.color else images.mean(dim=1, keepdim=True)
        # Autocast would run the convolutions in half precision, too coarse for the cos^9 votes.
        with torch.autocast(device_type=x.device.type, enabled=False):
            desc = self._describe(x.reshape(-1, 1, h, w))
        return desc.reshape(n, -1, *desc.shape[2:])

    def _describe(self, grey: Tensor) -> Tensor:
        """(M, 1, H, W) single-channel images -> (M, cells²·angles, h, w) descriptors."""
        dtype = grey.dtype
        h, w = grey.shape[-2:]
        taps = self.derivative_taps.to(dtype)
        half = taps.shape[1]
        padded = F.pad(grey, [half] * 4, mode="replicate")
        ih = F.conv2d(_mirror_differences(padded, dim=2, size=h), taps[..., None, :])
        iw = F.conv2d(_mirror_differences(padded, dim=3, size=w), taps[..., None])
        grads = torch.cat([ih, iw], dim=1)  # (M, 2, H, W)
        projections = F.conv2d(grads, self.directions.to(dtype))  # mag·cos(theta - a)
        magnitude = grads.pow(2).sum(dim=1, keepdim=True).clamp(min=_MIN_MAGNITUDE**2).sqrt()
        # = relu(proj)^alpha / mag^(alpha-1) with a floored mag; the ratio is <= 1, so float32
        # neither underflows in proj^alpha nor overflows.
        votes = (projections.relu() / magnitude) ** _ALPHA * magnitude

        p, s = self.patch_size, self.stride
        votes = votes[..., (h - p) % s // 2 :, (w - p) % s // 2 :]
        m, a = votes.shape[:2]
        cells = F.conv2d(
            votes.reshape(m * a, 1, *votes.shape[-2:]), self.pooling_kernels.to(dtype), stride=s
        )  # (M·A, cells², h, w) -> channel = cell·A + angle
        feats = cells.reshape(m, a, -1, *cells.shape[-2:]).transpose(1, 2).flatten(1, 2)
        return self._normalize(feats)

    def _normalize(self, feats: Tensor) -> Tensor:
        threshold_sq = self.contrast_threshold**2
        energy = feats.pow(2).sum(dim=1, keepdim=True)
        feats = (feats / energy.clamp(min=threshold_sq).sqrt()).clamp(max=self.clip)
        # Low-contrast descriptors get a dummy norm of 1 rather than their own, which may be 0:
        # torch.where back-propagates through both branches, so both must stay finite.
        high = energy >= threshold_sq
        norm = torch.where(high, feats.pow(2).sum(dim=1, keepdim=True), torch.ones_like(energy))
        return feats / norm.sqrt()


def build_dsift(color: bool, layer: str = "descriptors", weights: str = "auto") -> FeatureNetwork:
    """Dense SIFT as a feature network: grey (``dsift``, 128-d) or colour (``dsift_color``, 384-d).

    It has one layer and no weights; ``weights`` must be ``auto`` or ``random``.
    """
    network = "dsift_color" if color else "dsift"
    if weights not in ("auto", "random"):
        raise ValueError(
            f"{network} is hand-designed and takes no weights; got weights={weights!r}"
        )
    return FeatureNetwork(
        DenseSIFT(color=color),
        name=network,
        layer=layer,
        weights="none (hand-designed)",
        in_channels=3 if color else 1,
    )
