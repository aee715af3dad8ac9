"""The contrast search at a switch: contrast the features do not ask for is taken back, contrast
they need is kept, and only the images that switched are touched."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from slp_lightning.callbacks import PyramidSwitch
from slp_lightning.errors import ArgumentError
from slp_lightning.inversion.contrast import search_contrast
from slp_lightning.inversion.torch_model import Inversion
from slp_lightning.methods import MethodSettings, build_method
from slp_lightning.networks import FeatureNetwork

SCALES = (0.0, 0.25, 0.5, 0.75)


class ContrastThreshold(nn.Module):
    """Dense SIFT's trait in two lines: each channel's deviation from its mean, divided by its
    norm once that norm is above ``threshold``; below, the features scale with contrast."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, images: Tensor) -> Tensor:
        deviation = images - images.mean(dim=(-2, -1), keepdim=True)
        norm = deviation.flatten(2).norm(dim=2)[..., None, None]
        return deviation / norm.clamp(min=self.threshold)


def inversion_of(
    network: nn.Module, targets: Tensor, start: Tensor, method: str = "slp"
) -> Inversion:
    features = FeatureNetwork(
        network, name="toy", layer="x", weights="none", in_channels=targets.shape[1]
    )
    settings = MethodSettings(layer="x", compactness=0.0)
    inversion = Inversion(features, build_method(method, settings), pyramid_levels=2, image_size=16)
    inversion.set_targets(targets, inversion.features(targets), start, n_f=1.0)
    return inversion


def pattern(contrast: float, seed: int) -> Tensor:
    """(1, 1, 16, 16) logits: mid-grey plus random values of std ``contrast``."""
    return torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * contrast


def test_contrast_the_features_cannot_see_is_taken_back_and_the_rest_kept() -> None:
    # Channel 0 of the target is faint (below the threshold, where the features scale with its
    # contrast); the reconstruction has a strong, wrong pattern there, normalised above the
    # threshold: descent cannot lower it (the loss is flat along contrast), the search can.
    # Channel 1 is the target's own pattern: any change of its contrast raises the loss.
    target = torch.sigmoid(torch.cat([pattern(0.02, 0), pattern(1.0, 1)], dim=1))
    start = torch.cat([pattern(1.0, 2), pattern(1.0, 1)], dim=1)
    inversion = inversion_of(ContrastThreshold(threshold=1.0), target, start)
    finest_on = torch.ones(1, dtype=torch.long)
    before = inversion.losses(finest_on)[2]
    kept = search_contrast(inversion, finest_on, torch.tensor([True]), SCALES)
    after = inversion.losses(finest_on)[2]
    assert kept[0, 0] < 0.5 and kept[0, 1] == 1, kept
    assert after < 0.5 * before, (before, after)
    torch.testing.assert_close(inversion.I_pre[:, 1], start[:, 1])


def test_only_the_images_that_switched_are_searched() -> None:
    target = torch.sigmoid(pattern(0.02, 0)).repeat(2, 1, 1, 1)
    start = pattern(1.0, 2).repeat(2, 1, 1, 1)
    inversion = inversion_of(ContrastThreshold(threshold=1.0), target, start)
    kept = search_contrast(
        inversion, torch.ones(2, dtype=torch.long), torch.tensor([False, True]), SCALES
    )
    assert kept[0, 0] == 1 and kept[1, 0] < 1, kept
    torch.testing.assert_close(inversion.I_pre[0], start[0])


@pytest.mark.parametrize("method", ["slp", "slp_fft"])
def test_a_scale_is_the_contrast_of_the_image_before_its_range_constraint(method: str) -> None:
    # Pixels or spectrum, scaling a channel's contrast by s keeps its mean and scales the rest:
    # logit(I_r') = m + s·(logit(I_r) − m), so a search means the same for either.
    settings = MethodSettings(layer="x", compactness=0.0, init_noise=1.0)
    model = build_method(method, settings)
    I_pre = model.initial_I_pre((2, 1, 16, 16), torch.Generator().manual_seed(0))
    scale = torch.tensor([0.25, 0.0])
    before, after = (
        torch.logit(model.image(x)) for x in (I_pre, model.scale_contrast(I_pre, 0, scale))
    )
    mean = before.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(
        after, mean + scale.view(-1, 1, 1, 1) * (before - mean), atol=1e-4, rtol=1e-4
    )


def test_contrast_scales_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ArgumentError, match=r"contrast_scales are shares .* got \[0.5, 1.0\]"):
        PyramidSwitch(contrast_scales=(0.5, 1.0))


def test_the_losses_of_some_images_are_their_rows_of_the_losses_of_all() -> None:
    target = torch.sigmoid(torch.cat([pattern(0.5, seed) for seed in range(3)]))
    start = torch.cat([pattern(1.0, seed + 3) for seed in range(3)])
    inversion = inversion_of(ContrastThreshold(threshold=1.0), target, start)
    finest_on, rows = torch.tensor([2, 1, 2]), torch.tensor([True, False, True])
    every = inversion.losses(finest_on)
    some = inversion.losses_of(inversion.I_pre[rows], rows, finest_on)
    for all_rows, these in zip(every, some, strict=True):
        torch.testing.assert_close(these, all_rows[rows])
    doubled = inversion.losses_of(2 * inversion.I_pre[rows], rows, finest_on)[2]
    assert not torch.allclose(doubled, every[2][rows])
