"""Lucid's and Lucent's image parametrisation as a baseline: a Fourier spectrum scaled by
1/frequency, colours decorrelated with ImageNet's colour basis, then σ (Olah et al., "Feature
Visualization", Distill 2017; ``lucent.optvis.param.spatial.fft_image`` and ``color``)."""

from __future__ import annotations

import torch
from torch import Tensor

from slp_lightning.maths.pyramid import range_constraint
from slp_lightning.methods.pixel import PixelDescent

# The square root (by SVD) of the colour correlation of ImageNet's images, columns the colour basis.
COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
)
# Normalised by its largest column norm, so that no basis colour is brighter than 1.
COLOR_BASIS = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
# Lucid divides the image by 4 after the inverse FFT ("seems to reduce saturation").
SPECTRUM_GAIN = 0.25


def spectrum_scale(
    height: int, width: int, decay_power: float = 1.0, device: torch.device | None = None
) -> Tensor:
    """(H, W//2 + 1): 1 / max(f, 1 / max(H, W)) ** ``decay_power`` for each frequency f (cycles
    per pixel) of a real 2-D FFT; the floor keeps the mean (f = 0) finite."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    frequency = (fy**2 + fx**2).sqrt()
    return 1.0 / frequency.clamp(min=1.0 / max(height, width)) ** decay_power


def decorrelated_colour(image: Tensor) -> Tensor:
    """``image`` (N, C, H, W) with three channels read as ImageNet's decorrelated colours
    (brightness first) mixed into R, G and B by ``COLOR_BASIS``; one channel (grey) as it is."""
    if image.shape[1] != 3:
        return image
    return torch.einsum("ij,njhw->nihw", COLOR_BASIS.to(image), image)


class FourierImage(PixelDescent):
    """Pixel descent's loss (``Z = E``, every level on) on another ``I_pre``: the real view
    (N, C, S, S//2 + 1, 2) of the image's spectrum, scaled by 1/frequency before the (orthonormal)
    inverse FFT and divided by 4. Equal steps of every entry then change the image with natural
    images' 1/f spectrum, coarse structure most, and every frequency has a step size of its own
    (Adam's normalisation is per entry). Three channels are then mixed by ``COLOR_BASIS``:
    ``I_pre``'s channels are ImageNet's decorrelated colours, brightness first; one channel (grey
    networks) is left as it is. ``I_r = σ(...)``, the same range as the other methods.

    The spectrum starts as seeded Gaussian noise of std ``init_noise`` (Lucent's is 0.01). Images
    are square, as ``FeatureInversion``'s are: ``I_pre``'s shape names the size."""

    name = "fft"
    pixel_I_pre = False

    def initial_I_pre(self, shape: tuple[int, int, int, int], generator: torch.Generator) -> Tensor:
        count, channels, height, width = shape
        if height != width:
            raise ValueError(f"the fft method takes square images; got {height}x{width} px")
        spectrum = (count, channels, height, width // 2 + 1, 2)
        return torch.randn(spectrum, generator=generator) * self.settings.init_noise

    def image(self, I_pre: Tensor) -> Tensor:
        size = I_pre.shape[-3]
        if I_pre.dim() != 5 or I_pre.shape[-2:] != (size // 2 + 1, 2):
            raise ValueError(
                f"the fft method's I_pre is a spectrum (N, C, S, S//2 + 1, 2); got {tuple(I_pre.shape)}"
            )
        scale = spectrum_scale(size, size, device=I_pre.device)
        spectrum = torch.view_as_complex(I_pre * scale[..., None])
        image = torch.fft.irfft2(spectrum, s=(size, size), norm="ortho") * SPECTRUM_GAIN
        return range_constraint(decorrelated_colour(image))

    def scale_contrast(self, I_pre: Tensor, channel: int, scale: Tensor) -> Tensor:
        # Every coefficient but the mean's (frequency 0) scales the channel about its mean.
        scaled = I_pre.clone()
        scaled[:, channel] = I_pre[:, channel] * scale.view(-1, 1, 1, 1)
        scaled[:, channel, 0, 0] = I_pre[:, channel, 0, 0]
        return scaled
