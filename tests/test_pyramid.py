import pytest
import skimage.data
import torch

from slp_lightning.maths.pyramid import LaplacianPyramid, level_switches, range_constraint


def photo(height: int, width: int) -> torch.Tensor:
    image = torch.from_numpy(skimage.data.coffee()).permute(2, 0, 1).float() / 255
    return image[None, :, :height, :width].double()


@pytest.mark.parametrize("size", [(224, 224), (227, 227), (65, 47), (128, 96)])
def test_recomposition_is_exact(size: tuple[int, int]) -> None:
    image = photo(*size)
    pyramid = LaplacianPyramid(6 if min(size) >= 64 else 5)
    levels = pyramid.decompose(image)
    assert levels[0].shape == image.shape
    assert levels[-1].shape[-2:] == tuple(-(-s // 2 ** (pyramid.levels - 1)) for s in size)
    rebuilt = pyramid.recompose(levels)
    assert ((rebuilt - image).norm() / image.norm()).item() <= 1e-5


def test_band_pass_levels_are_small_and_low_pass_keeps_the_mean() -> None:
    image = photo(224, 224)
    levels = LaplacianPyramid(6).decompose(image)
    assert all(level.abs().mean() < 0.1 for level in levels[:-1])
    assert levels[-1].mean().item() == pytest.approx(image.mean().item(), abs=0.05)


def test_constant_image_has_no_band_pass_content() -> None:
    pyramid = LaplacianPyramid(4)
    levels = pyramid.decompose(torch.full((1, 3, 50, 37), 0.3, dtype=torch.float64))
    for level in levels[:-1]:
        assert level.abs().max().item() < 1e-12
    assert torch.allclose(levels[-1], torch.tensor(0.3, dtype=torch.float64))


def test_all_switches_on_gives_the_image_back() -> None:
    image = photo(96, 80).repeat(2, 1, 1, 1)
    pyramid = LaplacianPyramid(4)
    I_in = pyramid.switched(image, torch.tensor([1, 1]))
    assert torch.allclose(I_in, image, atol=1e-10)


def test_only_coarsest_switch_gives_the_expanded_gaussian_level() -> None:
    image = photo(96, 80)
    pyramid = LaplacianPyramid(4)
    gaussian = [image]
    for _ in range(3):
        gaussian.append(pyramid.reduce(gaussian[-1]))
    expected = gaussian[3]
    for finer in reversed(gaussian[:3]):
        expected = pyramid.expand(expected, finer.shape[-2:])
    I_in = pyramid.switched(image, torch.tensor([4]))
    assert torch.allclose(I_in, expected, atol=1e-10)
    # It is a blurred image: much less fine detail than the original.
    assert (I_in - image).norm() > 0.1 * image.norm()


def test_switches_are_per_image_and_drop_the_finest_levels() -> None:
    image = photo(64, 64).repeat(3, 1, 1, 1)
    pyramid = LaplacianPyramid(3)
    I_in = pyramid.switched(image, torch.tensor([3, 2, 1]))
    errors = [(I_in[i] - image[i]).norm().item() for i in range(3)]
    assert errors[0] > errors[1] > errors[2] == pytest.approx(0, abs=1e-10)


def test_level_switches_matrix() -> None:
    s = level_switches(torch.tensor([4, 2, 1]), 4)
    assert s.tolist() == [[0, 0, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]]


def test_pyramid_is_differentiable() -> None:
    image = photo(32, 40).requires_grad_(True)
    pyramid = LaplacianPyramid(3)
    corner = image[..., :12, :10].contiguous()
    assert torch.autograd.gradcheck(lambda x: pyramid.switched(x, torch.tensor([2])), (corner,))


def test_too_small_image_is_rejected_with_the_needed_size() -> None:
    with pytest.raises(ValueError, match="at least 64 px"):
        LaplacianPyramid(6).decompose(torch.zeros(1, 3, 40, 100))


def test_range_constraint_maps_reals_into_the_unit_interval() -> None:
    I_r = range_constraint(torch.tensor([-50.0, 0.0, 50.0]))
    assert I_r.tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-6)


def test_switched_shortcut_equals_recomposing_the_switched_levels() -> None:
    image = photo(96, 80).repeat(4, 1, 1, 1)
    image = image + 0.1 * torch.randn_like(image)  # rows differ
    pyramid = LaplacianPyramid(4)
    finest_on = torch.tensor([4, 2, 1, 3])
    expected = pyramid.recompose(pyramid.decompose(image), level_switches(finest_on, 4))
    assert torch.allclose(pyramid.switched(image, finest_on), expected, atol=1e-10)


def test_scale_bands_recomposes_with_each_level_scaled_per_image() -> None:
    pyramid = LaplacianPyramid(levels=4)
    x = torch.rand(2, 3, 32, 32)
    scaled = pyramid.scale_bands(x, torch.tensor([[0.25, 0.5, 2.0], [1.0, 1.0, 1.0]]))
    levels = pyramid.decompose(x, 3)  # three levels, not the pyramid's four
    expected = pyramid.recompose([0.25 * levels[0], 0.5 * levels[1], 2.0 * levels[2]])
    assert torch.allclose(scaled[0], expected[0], atol=1e-6)  # image 0: every level scaled
    assert torch.allclose(scaled[1], x[1], atol=1e-6)  # image 1: ones leave it alone
    assert (scaled[0] - x[0]).abs().mean() > 0.05  # a random image has every band to scale
    assert torch.allclose(pyramid.scale_bands(x, torch.full((2, 1), 3.0)), 3 * x)  # one level
