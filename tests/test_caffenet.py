"""CaffeNet: layer shapes, truncation, preprocessing, LRN, grouped convs and weight loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from slp_lightning.networks import build_feature_network
from slp_lightning.networks.caffenet import ALIASES, INPUT_SIZE, LAYERS, CaffeNet

SHAPES_227 = {
    "conv1": (1, 96, 55, 55), "relu1": (1, 96, 55, 55), "pool1": (1, 96, 27, 27),
    "norm1": (1, 96, 27, 27), "conv2": (1, 256, 27, 27), "relu2": (1, 256, 27, 27),
    "pool2": (1, 256, 13, 13), "norm2": (1, 256, 13, 13), "conv3": (1, 384, 13, 13),
    "relu3": (1, 384, 13, 13), "conv4": (1, 384, 13, 13), "relu4": (1, 384, 13, 13),
    "conv5": (1, 256, 13, 13), "relu5": (1, 256, 13, 13), "pool5": (1, 256, 6, 6),
    "fc6": (1, 4096), "relu6": (1, 4096), "fc7": (1, 4096), "relu7": (1, 4096), "fc8": (1, 1000),
}  # fmt: skip


@pytest.fixture(scope="module")
def full_net() -> CaffeNet:
    torch.manual_seed(0)
    return CaffeNet().eval()


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    """skimage's astronaut, 227×227 RGB in [0, 1], as a (1, 3, 227, 227) float32 tensor."""
    image = resize(data.astronaut(), (INPUT_SIZE, INPUT_SIZE), anti_aliasing=True)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def _run_with_hooks(net: CaffeNet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name, module in net.named_children()
    ]
    try:
        with torch.no_grad():
            outputs["output"] = net(images)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def test_layer_names_and_aliases() -> None:
    assert LAYERS == tuple(SHAPES_227)
    assert len(LAYERS) == 20
    assert ALIASES == {"mpool1": "pool1", "mpool2": "pool2", "mpool5": "pool5"}
    for alias, name in ALIASES.items():
        net = CaffeNet(alias)
        assert net.layer == name
        assert [n for n, _ in net.named_children()] == list(LAYERS[: LAYERS.index(name) + 1])


def test_unknown_layer_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown CaffeNet layer 'conv6'") as error:
        CaffeNet("conv6")
    for name in (*LAYERS, *ALIASES):
        assert name in str(error.value)


def test_shapes_of_all_layers_at_227(full_net: CaffeNet, astronaut: torch.Tensor) -> None:
    outputs = _run_with_hooks(full_net, astronaut)
    assert {name: tuple(outputs[name].shape) for name in LAYERS} == SHAPES_227
    assert torch.equal(outputs["output"], outputs["fc8"])
    # Not in-place: each ReLU left the layer before it untouched.
    assert (outputs["conv1"] < 0).any()
    assert torch.equal(outputs["relu1"], outputs["conv1"].clamp(min=0))


def test_truncated_net_matches_full_net(full_net: CaffeNet, astronaut: torch.Tensor) -> None:
    net = CaffeNet("conv3")
    keys = [f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")]
    assert list(net.state_dict()) == keys
    assert not any(name.startswith("fc") for name, _ in net.named_parameters())
    net.load_caffe_state_dict(full_net.state_dict())
    with torch.no_grad():
        features = net(astronaut)
    assert features.shape == (1, 384, 13, 13)
    assert torch.equal(features, _run_with_hooks(full_net, astronaut)["conv3"])


def test_state_dict_keys_and_grouped_conv_shapes(full_net: CaffeNet) -> None:
    shapes = {key: tuple(value.shape) for key, value in full_net.state_dict().items()}
    assert shapes == {
        "conv1.weight": (96, 3, 11, 11), "conv1.bias": (96,),
        "conv2.weight": (256, 48, 5, 5), "conv2.bias": (256,),
        "conv3.weight": (384, 256, 3, 3), "conv3.bias": (384,),
        "conv4.weight": (384, 192, 3, 3), "conv4.bias": (384,),
        "conv5.weight": (256, 192, 3, 3), "conv5.bias": (256,),
        "fc6.weight": (4096, 9216), "fc6.bias": (4096,),
        "fc7.weight": (4096, 4096), "fc7.bias": (4096,),
        "fc8.weight": (1000, 4096), "fc8.bias": (1000,),
    }  # fmt: skip
    assert [full_net.get_submodule(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]


def test_preprocessing_is_caffe_bgr_minus_mean(astronaut: torch.Tensor) -> None:
    net = CaffeNet("conv1")
    seen: list[torch.Tensor] = []
    net.conv1.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.no_grad():
        net(astronaut)
    rgb = astronaut[0].double().numpy()
    expected = rgb[::-1] * 255.0 - np.array([104.007, 116.669, 122.679])[:, None, None]
    np.testing.assert_allclose(seen[0][0].double().numpy(), expected, atol=1e-3)
    # One pixel by hand: channel 0 is blue.
    assert seen[0][0, 0, 100, 50].item() == pytest.approx(
        astronaut[0, 2, 100, 50].item() * 255 - 104.007, abs=1e-3
    )
    assert torch.equal(net.preprocess(astronaut), seen[0])


def test_lrn_matches_caffe_formula() -> None:
    norm = CaffeNet("norm1").norm1
    a = torch.zeros(1, 7, 2, 2)
    a[0, :, 1, 0] = torch.tensor([100.0, 200, 300, 400, 500, 600, 700])
    b = norm(a)[0, :, 1, 0]
    # Caffe: b_c = a_c / (k + alpha/n * sum of a^2 over channels c-2..c+2 (zero outside))^beta
    middle = 400 / (1 + 1e-4 / 5 * (200**2 + 300**2 + 400**2 + 500**2 + 600**2)) ** 0.75
    edge = 100 / (1 + 1e-4 / 5 * (100**2 + 200**2 + 300**2)) ** 0.75
    assert middle == pytest.approx(43.95363, rel=1e-6)
    assert edge == pytest.approx(36.74196, rel=1e-6)
    assert b[3].item() == pytest.approx(middle, rel=1e-5)
    assert b[0].item() == pytest.approx(edge, rel=1e-5)
    # alpha not divided by n would give 13.58: torch divides it, like Caffe.
    assert b[3].item() != pytest.approx(400 / (1 + 1e-4 * 9e5) ** 0.75, rel=1e-2)


def test_load_caffe_state_dict_errors_and_ignores_later_layers(full_net: CaffeNet) -> None:
    full = full_net.state_dict()
    net = CaffeNet("conv3")
    net.load_caffe_state_dict({**full, "fc7.weight": torch.zeros(3)})  # after conv3: ignored
    assert torch.equal(net.conv3.bias, full["conv3.bias"])
    with pytest.raises(ValueError, match=r"conv2\.weight has shape \(256, 96, 5, 5\), expected"):
        net.load_caffe_state_dict({**full, "conv2.weight": torch.zeros(256, 96, 5, 5)})
    with pytest.raises(ValueError, match=r"missing conv3\.bias"):
        net.load_caffe_state_dict({k: v for k, v in full.items() if k != "conv3.bias"})
    with pytest.raises(ValueError, match=r"unexpected conv9\.weight"):
        net.load_caffe_state_dict({**full, "conv9.weight": torch.zeros(1)})


def test_other_input_sizes_follow_caffe_rounding() -> None:
    images = torch.rand(1, 3, 100, 150)
    with torch.no_grad():
        assert CaffeNet("conv5")(images).shape == (1, 256, 5, 8)
        # Caffe rounds pool sizes up: pool5 width ceil(5/2)+1 = 4 (floor would give 3).
        assert CaffeNet("pool5")(images).shape == (1, 256, 2, 4)


def test_too_small_inputs_raise() -> None:
    net = CaffeNet("conv1")
    assert net.min_input_size == 11
    assert net(torch.rand(1, 3, 11, 11)).shape == (1, 96, 1, 1)
    with pytest.raises(ValueError, match="input 10×20 is too small .* at least 11"):
        net(torch.rand(1, 3, 10, 20))
    pool5 = CaffeNet("pool5")
    assert pool5.min_input_size == 55
    assert pool5(torch.rand(1, 3, 55, 55)).shape == (1, 256, 1, 1)
    with pytest.raises(ValueError, match="at least 55"):
        pool5(torch.rand(1, 3, 54, 60))
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        net(torch.rand(3, 20, 20))


def test_fc_layers_need_227_input() -> None:
    net = CaffeNet("fc6")
    with pytest.raises(ValueError, match="fc layers need a 227×227 input .* gives pool5 7×7"):
        net(torch.rand(1, 3, 240, 240))


@pytest.mark.slow
def test_caffenet_loads_a_converted_state_dict_from_a_path(tmp_path: Path) -> None:
    torch.manual_seed(5)
    full = CaffeNet("fc8").state_dict()
    torch.save(full, tmp_path / "caffenet.pth")
    net = build_feature_network("alexnet_caffe", "conv2", str(tmp_path / "caffenet.pth"))
    assert torch.equal(net.body.conv2.weight, full["conv2.weight"])
    assert net.weights == f"{tmp_path / 'caffenet.pth'} (4 tensors used, 12 unused keys)"
