"""DenseSIFT against an independent loop-by-loop NumPy port of the iceberk dsift steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from slp_lightning.networks.dsift import DenseSIFT

PATCH, STRIDE, ANGLES, CELLS, ALPHA = 16, 8, 8, 4, 9
THRESHOLD, CLIP = 1.0, 0.2
# A full-resolution 45x38 crop of the camera (coat and sky: both high- and low-contrast patches)
# and a downscaled 37x42 astronaut. Grid offsets (45 - 16) % 8 // 2 = 2, (38 - 16) % 8 // 2 = 3,
# (37 - 16) % 8 // 2 = 2 and (42 - 16) % 8 // 2 = 1, so the centring of the grid is tested.
GREY_CROP = (slice(100, 145), slice(150, 188))
COLOUR_SIZE = (37, 42)


# --- NumPy reference -------------------------------------------------------------------------


def _convolve_replicate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution, output the size of ``image``, border pixels replicated."""
    r = kernel.shape[0] // 2
    padded = np.pad(image, r, mode="edge")
    height, width = image.shape
    out = np.zeros_like(image)
    for du in range(-r, r + 1):
        for dv in range(-r, r + 1):
            # out[i, j] += k[du, dv] * image[i - du, j - dv]
            shifted = padded[r - du : r - du + height, r - dv : r - dv + width]
            out += kernel[du + r, dv + r] * shifted
    return out


def reference_dsift(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey (H, W) image in [0, 1] -> (descriptors (128, h, w), raw descriptor norms (h, w))."""
    half = 2 * int(np.ceil(1.0))
    r = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2.0)
    g /= g.sum()
    gh, gw = np.gradient(g)
    gh *= 2.0 / np.abs(gh).sum()
    gw *= 2.0 / np.abs(gw).sum()
    ih, iw = _convolve_replicate(image, gh), _convolve_replicate(image, gw)
    magnitude, theta = np.hypot(ih, iw), np.arctan2(ih, iw)
    angles = 2 * np.pi * np.arange(ANGLES) / ANGLES

    height, width = image.shape
    rows = range((height - PATCH) % STRIDE // 2, height - PATCH + 1, STRIDE)
    cols = range((width - PATCH) % STRIDE // 2, width - PATCH + 1, STRIDE)
    cell_size = PATCH / CELLS
    centres = [(k + 0.5) * cell_size - 0.5 for k in range(CELLS)]  # 1.5, 5.5, 9.5, 13.5
    out = np.zeros((CELLS * CELLS * ANGLES, len(rows), len(cols)))
    norms = np.zeros((len(rows), len(cols)))
    for i, y0 in enumerate(rows):
        for j, x0 in enumerate(cols):
            hist = np.zeros((CELLS, CELLS, ANGLES))
            for py in range(PATCH):
                for px in range(PATCH):
                    y, x = y0 + py, x0 + px
                    vote = magnitude[y, x] * np.maximum(np.cos(theta[y, x] - angles), 0) ** ALPHA
                    for cr in range(CELLS):
                        wy = max(0.0, 1 - abs(py - centres[cr]) / cell_size)
                        for cc in range(CELLS):
                            wx = max(0.0, 1 - abs(px - centres[cc]) / cell_size)
                            hist[cr, cc] += wy * wx * vote
            f = hist.reshape(-1)  # (cell_row * 4 + cell_col) * 8 + angle
            length = np.sqrt(np.sum(f**2))
            f = np.minimum(f / max(length, THRESHOLD), CLIP)
            if length >= THRESHOLD:
                f = f / np.sqrt(np.sum(f**2))
            out[:, i, j], norms[i, j] = f, length
    return out, norms


# --- fixtures ---------------------------------------------------------------------------------


def _camera(size: tuple[int, int]) -> np.ndarray:
    return resize(data.camera() / 255.0, size, anti_aliasing=True)


def _astronaut(size: tuple[int, int]) -> np.ndarray:
    return resize(data.astronaut() / 255.0, size, anti_aliasing=True).transpose(2, 0, 1)


def _tensor(image: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(H, W) or (C, H, W) array -> (1, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(dtype).reshape(1, -1, *image.shape[-2:])


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return data.camera()[GREY_CROP] / 255.0


@pytest.fixture(scope="module")
def camera_reference(camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return reference_dsift(camera)


# --- agreement with the reference -------------------------------------------------------------


def test_grey_matches_numpy_reference(
    camera: np.ndarray, camera_reference: tuple[np.ndarray, np.ndarray]
) -> None:
    assert camera.min() >= 0 and camera.max() <= 1
    expected, _ = camera_reference
    out = DenseSIFT()(_tensor(camera))
    assert out.shape == (1, 128, 4, 3) and out.dtype == torch.float64
    # the filters are float32 buffers, so float64 agrees to ~3e-8, not to float64 precision
    assert np.abs(out[0].numpy() - expected).max() <= 1e-6
    out32 = DenseSIFT()(_tensor(camera, torch.float32))
    assert out32.dtype == torch.float32
    assert np.abs(out32[0].numpy() - expected).max() <= 1e-6


def test_colour_matches_numpy_reference() -> None:
    rgb = _astronaut(COLOUR_SIZE)
    expected = np.concatenate([reference_dsift(channel)[0] for channel in rgb])
    out = DenseSIFT(color=True)(_tensor(rgb))
    assert out.shape == (1, 384, 3, 4)
    assert np.abs(out[0].numpy() - expected).max() <= 1e-6


def test_grey_of_colour_image_is_channel_mean() -> None:
    rgb = _tensor(_astronaut(COLOUR_SIZE))
    grey = DenseSIFT()
    torch.testing.assert_close(grey(rgb), grey(rgb.mean(dim=1, keepdim=True)), rtol=0, atol=1e-12)


def test_colour_replicates_single_channel(camera: np.ndarray) -> None:
    image = _tensor(camera)
    colour, grey = DenseSIFT(color=True)(image), DenseSIFT()(image)
    torch.testing.assert_close(colour, grey.repeat(1, 3, 1, 1), rtol=0, atol=0)


# --- shapes, norms, special inputs ------------------------------------------------------------


def test_shapes_on_128px_images() -> None:
    grey = DenseSIFT()(_tensor(_camera((128, 128)), torch.float32))
    colour = DenseSIFT(color=True)(_tensor(_astronaut((128, 128)), torch.float32))
    assert grey.shape == (1, 128, 15, 15)
    assert colour.shape == (1, 384, 15, 15)
    assert grey.min() >= 0 and colour.max() <= 1


def test_descriptor_norms(
    camera: np.ndarray, camera_reference: tuple[np.ndarray, np.ndarray]
) -> None:
    _, raw_norms = camera_reference
    high = torch.from_numpy(raw_norms >= THRESHOLD)
    assert 0 < high.sum() < high.numel()  # the photograph has both kinds of patch
    norms = DenseSIFT()(_tensor(camera, torch.float32)).norm(dim=1)[0]
    assert norms.max() <= 1 + 1e-6
    torch.testing.assert_close(norms[high], torch.ones_like(norms[high]), rtol=0, atol=1e-6)
    # low-contrast descriptors are divided by the threshold, never stretched to unit length
    low_raw = torch.from_numpy(raw_norms)[~high].float()
    assert (norms[~high] <= low_raw + 1e-6).all() and (norms[~high] < 1).all()


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_constant_image_gives_zero_descriptors(color: bool, value: float) -> None:
    out = DenseSIFT(color=color)(torch.full((2, 3, 24, 32), value))
    assert out.shape == (2, 384 if color else 128, 2, 3)
    assert (out == 0).all()


# --- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("color", [False, True])
def test_gradients_finite_on_flat_images(color: bool) -> None:
    # the camera clipped to [0.3, 0.6] has large exactly flat sky and coat regions
    clipped = np.clip(_camera((48, 40)), 0.3, 0.6)
    assert (clipped == 0.3).mean() > 0.1 and (clipped == 0.6).mean() > 0.1
    images = [torch.full((1, 3, 24, 24), 0.5), _tensor(clipped, torch.float32).expand(1, 3, -1, -1)]
    for image in images:
        image = image.clone().requires_grad_(True)
        DenseSIFT(color=color)(image).sum().backward()
        assert torch.isfinite(image.grad).all()
    assert image.grad.abs().sum() > 0  # the photograph's edges do receive gradient


def test_gradcheck() -> None:
    generator = torch.Generator().manual_seed(0)
    high = torch.rand(1, 1, 16, 24, generator=generator, dtype=torch.float64)
    model = DenseSIFT()
    # one high-contrast input (renormalised branch) and one low-contrast (divided by threshold)
    for image, expect_unit in ((high, True), (0.5 + 0.02 * (high - 0.5), False)):
        norms = model(image).norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms)) == expect_unit
        # fast mode: the full Jacobian passes too but takes ~35 s per input
        assert torch.autograd.gradcheck(model, image.requires_grad_(True), fast_mode=True)


# --- dtypes, autocast, module ---------------------------------------------------------------


def test_half_precision_and_autocast_compute_in_float32(camera: np.ndarray) -> None:
    model = DenseSIFT()
    image = _tensor(camera, torch.float32)
    half = image.half()
    out_half = model(half)
    assert out_half.dtype == torch.float32
    torch.testing.assert_close(out_half, model(half.float()), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_autocast = model(image)
    assert out_autocast.dtype == torch.float32
    torch.testing.assert_close(out_autocast, model(image), rtol=0, atol=1e-6)


def test_module_has_buffers_only() -> None:
    model = DenseSIFT(color=True)
    assert list(model.parameters()) == []
    assert {name for name, _ in model.named_buffers()} == {
        "derivative_taps",
        "directions",
        "pooling_kernels",
    }
    assert model.state_dict() == {}
    assert model.double().derivative_taps.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(camera: np.ndarray) -> None:
    image = _tensor(camera, torch.float32)
    model = DenseSIFT(color=True)
    expected = model(image)
    torch.testing.assert_close(model.cuda()(image.cuda()).cpu(), expected, atol=1e-5, rtol=0)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("channels", [2, 4])
def test_wrong_channel_count_raises(color: bool, channels: int) -> None:
    with pytest.raises(ValueError, match=f"accepts 1 or 3 channels, got {channels}"):
        DenseSIFT(color=color)(torch.zeros(1, channels, 32, 32))


@pytest.mark.parametrize("size", [(15, 32), (32, 15)])
def test_too_small_image_raises(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=rf"at least 16x16 px, got {size[0]}x{size[1]}"):
        DenseSIFT()(torch.zeros(1, 1, *size))


def test_bad_input_rank_and_dtype_raise() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        DenseSIFT()(torch.zeros(1, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        DenseSIFT()(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError, match="divisible"):
        DenseSIFT(patch_size=18, num_cells=4)
    with pytest.raises(ValueError, match="positive"):
        DenseSIFT(clip=0.0)
