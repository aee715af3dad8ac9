"""What every inversion method is: how ``I_pre`` makes the image, where the pyramid starts, and
the loss of each image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from slp_lightning.errors import check_range
from slp_lightning.maths.pyramid import range_constraint


@dataclass(frozen=True)
class MethodSettings:
    """The model's settings a method may read (``FeatureInversion``'s arguments, resolved)."""

    layer: str
    compactness: float
    tv_weights: tuple[float, float] | None = None
    #: standard deviation of the seeded Gaussian noise ``I_pre`` starts from.
    init_noise: float = 0.1
    #: K, the pyramid's levels (a parametrisation of levels reads it: ``joint_pyramid``).
    levels: int = 6

    def __post_init__(self) -> None:
        check_range(self.compactness, "FeatureInversion.compactness", low=0)
        check_range(self.init_noise, "FeatureInversion.init_noise", low=0)
        for weight in self.tv_weights or ():
            check_range(weight, "FeatureInversion.tv_weights", low=0)


class InversionMethod:
    """One way to invert features. A method says what ``I_pre`` is and how it makes the image
    ``I_r`` in (0, 1) (``initial_I_pre``, ``image``; by default pixels in logit units and
    ``I_r = σ(I_pre)``), which levels of ``I_r``'s switched Laplacian pyramid ``I_in`` are on at
    the start, and how the loss of each image is made from the features of ``I_in``.

    Subclass it in a module of ``slp_lightning/methods/`` and add one line to ``METHODS`` there.
    """

    #: the name on the command line (``--model.method``), in outputs and sweeps.
    name: ClassVar[str]
    #: True: only the coarsest level is on at the start and ``PyramidSwitch`` turns finer ones on
    #: as the optimisation converges (λ_D and K then mean something; sweeps vary them). False:
    #: every level is on from the start, so ``I_in = I_r``.
    coarse_to_fine: ClassVar[bool] = False
    #: True: ``I_pre`` holds the image's pixels (in some colour basis), so a filter over them, as
    #: ``band_lr``'s rates per pyramid band, acts on the image's bands.
    pixel_I_pre: ClassVar[bool] = True

    def __init__(self, settings: MethodSettings) -> None:
        self.settings = settings

    def initial_I_pre(self, shape: tuple[int, int, int, int], generator: torch.Generator) -> Tensor:
        """``I_pre`` at the start for all N targets, images of ``shape`` (N, C, H, W): a float32
        tensor on the CPU with one row per target (N, …), drawn from ``generator`` only, so that a
        run is reproducible from its seed (each process then keeps its own rows). By default the
        images' pixels in logit units: Gaussian noise of std ``init_noise`` (0: mid-grey)."""
        return torch.randn(shape, generator=generator) * self.settings.init_noise

    def image(self, I_pre: Tensor) -> Tensor:
        """The image ``I_r`` (N, C, H, W) in (0, 1) that ``I_pre`` (as made by ``initial_I_pre``)
        stands for, differentiably. By default the range constraint ``σ(I_pre)``."""
        return range_constraint(I_pre)

    def scale_contrast(self, I_pre: Tensor, channel: int, scale: Tensor) -> Tensor:
        """``I_pre`` with the contrast of ``channel`` (of the image ``image`` makes before its
        range constraint) scaled by ``scale`` (N,) per image about the channel's mean: 0 makes
        the channel flat, 1 leaves it as it is. By default ``I_pre``'s own pixels."""
        values = I_pre[:, channel]
        mean = values.mean(dim=(-2, -1), keepdim=True)
        scaled = I_pre.clone()
        scaled[:, channel] = mean + scale.view(-1, 1, 1) * (values - mean)
        return scaled

    def loss(self, E: Tensor, D: Tensor, observed: Tensor, I_r: Tensor) -> Tensor:
        """The loss ``Z`` per image (N,), from the data term ``E`` (``‖f(I_in) − f(I)‖₂``, or
        what an attacker who knows a defence makes of it: ``threat.Threat.data_term``),
        ``D = ‖I_r − I_in‖₂``, the features observed (``f(I)`` without a defence) and ``I_r``;
        all float32."""
        raise NotImplementedError
