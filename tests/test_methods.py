"""Inversion methods behind one registry: the built-in six, and one added by a user."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slp_lightning import FeatureInversion, TargetImages
from slp_lightning.methods import METHODS, InversionMethod, MethodSettings, build_method
from slp_lightning.methods.fft import COLOR_BASIS
from slp_lightning.running.sweep import Sweep

from helpers import short_inversion


class SquaredError(InversionMethod):
    """A baseline as a user would add it: plain descent on E², every level on."""

    name = "squared"

    def loss(self, E: Tensor, D: Tensor, observed: Tensor, I_r: Tensor) -> Tensor:
        return E.pow(2)


def fit(method: str, steps: int = 20) -> FeatureInversion:
    model = FeatureInversion(
        method=method, layer="conv2", weights="random", pyramid_levels=3, image_size=64
    )
    pl.seed_everything(0, verbose=False)
    run = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)  # fmt: skip
    run.fit(model, TargetImages("skimage:astronaut", image_size=64))
    return model


def test_registry_names_its_classes_and_refuses_unknown_names() -> None:
    assert list(METHODS) == ["slp", "pixel", "tv", "fft", "slp_fft", "slp_color", "joint_pyramid"]
    assert [METHODS[m].coarse_to_fine for m in METHODS] == [
        True,
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    settings = MethodSettings(layer="conv5", compactness=0.1)
    assert build_method("tv", settings).weights == (1e-3, 1e-1)  # conv5's defaults
    with pytest.raises(
        ValueError, match="unknown method 'magic'; valid methods: slp, pixel, tv, fft, slp_fft"
    ):
        build_method("magic", settings)


def test_losses_of_the_built_in_methods() -> None:
    E, D = torch.tensor([2.0, 3.0]), torch.tensor([1.0, 0.0])
    settings = MethodSettings(layer="conv2", compactness=0.5)
    assert build_method("slp", settings).loss(E, D, None, None).tolist() == [2.5, 3.0]
    assert build_method("pixel", settings).loss(E, torch.zeros(2), None, None).tolist() == [
        2.0,
        3.0,
    ]
    assert build_method("fft", settings).loss(E, torch.zeros(2), None, None).tolist() == [
        2.0,
        3.0,
    ]


def test_a_method_added_to_the_registry_runs_and_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METHODS, "squared", SquaredError)
    model = fit("squared")
    assert model.inversion.method.name == "squared" and model.schedule.finest_on.tolist() == [
        1
    ]  # every level on
    assert model.inversion.evaluate()["normalized_error"].item() < 1.5
    jobs = Sweep(methods=["slp", "squared"], compactness=[0.01, 0.1]).jobs(
        "slp", "alexnet", "conv2"
    )
    # λ_D is swept for the coarse-to-fine method only
    assert [(j.method, j.compactness) for j in jobs] == [
        ("slp", 0.01),
        ("slp", 0.1),
        ("squared", None),
    ]


def test_a_plain_trainer_runs_the_whole_coarse_to_fine_schedule() -> None:
    # No PyramidSwitch given: the module brings one, so every level comes on.
    model = fit("slp", steps=40)
    assert model.schedule.finest_on.tolist() == [1]
    assert (model.schedule.switch_steps > 0).all()


# ----------------------------------------------------------------- fft: Lucid's parametrisation
def test_fft_runs_through_the_registry_and_sweeps() -> None:
    model = fit("fft")  # a Trainer, the cosine schedule's per-image scales on a 5-D I_pre
    assert model.inversion.method.name == "fft" and model.schedule.finest_on.tolist() == [
        1
    ]  # every level on
    assert model.inversion.I_pre.shape == (
        1,
        3,
        64,
        33,
        2,
    )  # the real view of a (3, 64, 64) image's rfft2
    assert model.inversion.evaluate()["normalized_error"].item() < 1.5
    jobs = Sweep(methods=["slp", "fft"], compactness=[0.01, 0.1]).jobs("slp", "alexnet", "conv2")
    assert [(j.method, j.compactness) for j in jobs] == [("slp", 0.01), ("slp", 0.1), ("fft", None)]


@pytest.mark.parametrize(("channels", "size"), [(3, 16), (1, 16), (3, 15)])
def test_fft_image_is_in_range_and_decorrelates_colour_only(channels: int, size: int) -> None:
    fft = build_method("fft", MethodSettings(layer="x", compactness=0.0, init_noise=1.0))
    I_pre = fft.initial_I_pre((2, channels, size, size), torch.Generator().manual_seed(0))
    assert I_pre.shape == (2, channels, size, size // 2 + 1, 2)
    I_r = fft.image(I_pre)
    assert I_r.shape == (2, channels, size, size) and 0 < I_r.min() and I_r.max() < 1
    # A mean alone is a flat image: the f = 0 entry c is scaled by 1 / (1 / size), the orthonormal
    # inverse FFT divides by size, Lucid by 4: c / 4 in every pixel, of the first colour of
    # ImageNet's basis (about equal R, G and B) in colour, as it is in grey.
    mean = torch.zeros_like(I_pre[:1])
    mean[0, 0, 0, 0, 0] = 2.0
    logit = torch.logit(fft.image(mean))
    colour = COLOR_BASIS[:, 0] if channels == 3 else torch.ones(1)
    torch.testing.assert_close(logit, (0.5 * colour).view(1, channels, 1, 1).expand_as(logit))


def test_fft_start_is_seeded_and_does_not_depend_on_rows() -> None:
    targets = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    names = ["a", "b", "c"]

    def start(seed: int, rows: list[int] | None = None) -> Tensor:
        torch.manual_seed(seed)
        model = toy_inversion("fft", high_pass())
        model.set_targets(targets, names, None if rows is None else torch.tensor(rows))
        return model.inversion.I_pre.detach()

    assert torch.equal(start(0), start(0))
    assert not torch.equal(start(0), start(1))
    assert torch.equal(start(0, rows=[1]), start(0)[1:2])  # a process owning target b only


def high_pass(channels: int = 3, features: int = 8) -> nn.Conv2d:
    """A fixed random linear map that sees fine detail far better than coarse structure: each
    channel's Laplacian taken twice (gain ≈ (2πf)⁴ at low frequencies f, 64 at the finest) plus a
    tenth of the image, mixed into ``features`` channels by a random matrix; periodic borders."""
    laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    kernel = F.conv2d(F.pad(laplacian, (2, 2, 2, 2)), laplacian)[0, 0]  # 5x5: the Laplacian twice
    kernel[2, 2] += 0.1
    mix = torch.randn(features, channels, 1, 1, generator=torch.Generator().manual_seed(0))
    conv = nn.Conv2d(channels, features, 5, padding=2, padding_mode="circular", bias=False)
    conv.weight.data = mix * kernel
    return conv.requires_grad_(False).eval()


def smooth_image(size: int, seed: int) -> Tensor:
    """(1, 3, size, size) in [0.15, 0.85]: mid-grey plus random waves of 1 to 3 cycles per image."""
    frequency = torch.fft.fftfreq(size) * size
    radius2 = frequency[:, None] ** 2 + frequency[None, :] ** 2
    generator = torch.Generator().manual_seed(seed)
    spectrum = torch.randn(3, size, size, dtype=torch.complex64, generator=generator)
    waves = torch.fft.ifft2(spectrum * ((radius2 > 0) & (radius2 <= 9))).real
    return (0.5 + 0.35 * waves / waves.abs().amax(dim=(1, 2), keepdim=True))[None]


def toy_inversion(method: str, network: nn.Module) -> FeatureInversion:
    return FeatureInversion(method=method, network=network, layer=None, input_mean="none", input_std="none",
                            image_size=32, pyramid_levels=1)  # fmt: skip


def image_error_after(method: str, steps: int, network: nn.Module, target: Tensor) -> float:
    """The MSE of ``I_r`` to ``target`` after ``steps`` of the default optimiser (Adam, 0.05)."""
    torch.manual_seed(0)
    model = toy_inversion(method, network)
    model.set_targets(target, ["smooth"])
    optimizer = model.configure_optimizers()
    for _ in range(steps):
        optimizer.zero_grad()
        model.inversion.losses(model.schedule.finest_on)[2].sum().backward()
        optimizer.step()
    with torch.no_grad():
        return (model.inversion.images(model.schedule.finest_on)[0] - target).pow(2).mean().item()


def test_fft_recovers_a_smooth_image_faster_than_pixel_descent_through_a_high_pass_map() -> None:
    # Both start at an MSE of 0.0135. Pixel descent's steps go to the frequencies the map sees best
    # and the image barely moves (0.0128 after 100 steps); in the spectrum every frequency has a
    # step size of its own (Adam's normalisation is per entry), so the waves are found (0.00034).
    # Over target seeds 1-6 and mix seeds 0-3, fft's error is 7 to 190 times below pixel's
    # (median 30); with pixels in fft's place the two are equal and this fails.
    target, network = smooth_image(32, seed=1), high_pass()
    pixel = image_error_after("pixel", 100, network, target)
    fft = image_error_after("fft", 100, network, target)
    assert pixel > 0.012 and fft < pixel / 10, (pixel, fft)


# ------------------------------------------- slp_fft, slp_color: the switches on Lucid's priors
def test_slp_on_lucid_priors_reuses_their_images_and_slps_loss() -> None:
    settings = MethodSettings(layer="x", compactness=0.5, init_noise=1.0)
    generator = torch.Generator().manual_seed(0)
    spectrum = build_method("fft", settings).initial_I_pre((2, 3, 16, 16), generator)
    slp_fft = build_method("slp_fft", settings)
    torch.testing.assert_close(
        slp_fft.image(spectrum), build_method("fft", settings).image(spectrum)
    )
    E, D = torch.tensor([2.0, 3.0]), torch.tensor([1.0, 0.0])
    for name in ("slp_fft", "slp_color"):
        assert build_method(name, settings).loss(E, D, None, None).tolist() == [2.5, 3.0]
    # slp_color: pixels in ImageNet's decorrelated colours, brightness the first channel.
    brightness = torch.zeros(1, 3, 4, 4)
    brightness[:, 0] = 1.0
    logit = torch.logit(build_method("slp_color", settings).image(brightness))
    torch.testing.assert_close(logit, COLOR_BASIS[:, 0].view(1, 3, 1, 1).expand_as(logit))


@pytest.mark.parametrize("method", ["slp_fft", "slp_color"])
def test_slp_on_lucid_priors_starts_seeded_coarsest_first_and_its_loss_falls(method: str) -> None:
    target = smooth_image(32, seed=1)

    def start(seed: int) -> FeatureInversion:
        torch.manual_seed(seed)
        model = FeatureInversion(method=method, network=random_conv(), layer=None, input_mean="none",
                                 input_std="none", image_size=32, pyramid_levels=3)  # fmt: skip
        model.set_targets(target, ["smooth"])
        return model

    model = start(0)
    assert torch.equal(model.inversion.I_pre, start(0).inversion.I_pre)
    assert not torch.equal(model.inversion.I_pre, start(1).inversion.I_pre)
    assert model.schedule.finest_on.tolist() == [3]  # only the coarsest of 3 levels on
    losses = short_inversion(model, target, steps=10)
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.9 * losses[0], losses


def random_conv() -> nn.Conv2d:
    """A fixed random 3x3 map of 3 channels to 8, periodic borders: a toy network whose loss falls
    smoothly at Adam's 0.05 (through ``high_pass`` coarse phases oscillate at that rate)."""
    conv = nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular", bias=False)
    conv.weight.data = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    return conv.requires_grad_(False).eval()
