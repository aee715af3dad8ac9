import pytest
import torch
from torchvision.models import AlexNet_Weights, alexnet

from slp_lightning.networks import build_feature_network, default_input_size
from slp_lightning.networks.alexnet import ALIASES, LAYERS
from slp_lightning.networks.craft import LAYERS as CRAFT_LAYERS
from slp_lightning.networks.weights import RandomWeightsWarning, cached_weights_path

SHAPES_AT_224 = {
    "conv1": (64, 55, 55), "pool1": (64, 27, 27), "conv2": (192, 27, 27), "pool2": (192, 13, 13),
    "conv3": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
    "fc6": (4096,), "relu7": (4096,), "fc8": (1000,),
}  # fmt: skip


def test_every_paper_layer_name_builds_with_the_right_shape() -> None:
    images = torch.rand(1, 3, 224, 224)
    for layer in [*LAYERS, *ALIASES]:
        features = build_feature_network("alexnet", layer, "random")(images)
        if layer in SHAPES_AT_224:
            assert features.shape[1:] == SHAPES_AT_224[layer], layer
    assert default_input_size("alexnet") == 224


def test_conv_layer_keeps_negative_values_and_relu_removes_them() -> None:
    images = torch.rand(2, 3, 64, 64)
    assert build_feature_network("alexnet", "conv2", "random")(images).min() < 0
    assert build_feature_network("alexnet", "relu2", "random")(images).min() >= 0


@pytest.mark.parametrize(
    ("network", "layer", "message"),
    [("alexnet", "conv9", "valid layers: conv1, relu1"), ("vgg99", "conv1", "valid networks")],
)
def test_unknown_names_list_the_valid_ones(network: str, layer: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_feature_network(network, layer, "random")


def test_network_is_frozen_and_stays_in_eval_mode() -> None:
    net = build_feature_network("alexnet", "fc6", "random")
    net.train()
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_random_weights_are_seeded_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_feature_network("alexnet", "conv1", "random")
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_feature_network("alexnet", "conv1", "random")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.weights == "random (seed 0)"


def _write_fake_pretrained(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = alexnet().state_dict()
    path = cached_weights_path(AlexNet_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_auto_and_strict_load_the_cached_torchvision_file() -> None:
    state = _write_fake_pretrained(seed=7)
    for spec in ["auto", "IMAGENET1K_V1"]:
        net = build_feature_network("alexnet", "conv1", spec)
        assert net.weights == "AlexNet IMAGENET1K_V1"
        assert torch.equal(net.body[1].weight, state["features.0.weight"])


def test_auto_without_weights_warns_loudly_and_uses_the_seeded_random_network() -> None:
    with pytest.warns(RandomWeightsWarning, match="RANDOM network") as warned:
        net = build_feature_network("alexnet", "conv1", "auto")
    assert net.weights == "random (seed 0)"
    assert "--model.network craft_vgg16_bn" in str(warned[0].message)  # the offline trained one


def test_strict_pretrained_without_the_file_says_where_to_put_it() -> None:
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth"):
        build_feature_network("alexnet", "conv1", "IMAGENET1K_V1")


def test_local_state_dict_file(tmp_path) -> None:
    torch.manual_seed(3)
    state = alexnet().state_dict()
    torch.save(state, tmp_path / "mine.pth")
    net = build_feature_network("alexnet", "conv1", str(tmp_path / "mine.pth"))
    assert net.weights == f"{tmp_path / 'mine.pth'} (2 tensors used, 14 unused keys)"
    assert torch.equal(net.body[1].weight, state["features.0.weight"])


def test_bad_weights_spec_lists_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="expected 'auto', 'random'"):
        build_feature_network("alexnet", "conv1", "/no/such/file.pth")


@pytest.mark.parametrize("layer", CRAFT_LAYERS)
def test_every_craft_layer_builds_with_the_right_shape_at_64(layer: str) -> None:
    block = int(next(c for c in layer if c.isdigit()))  # conv3_2, bn3_2, relu3_2, pool3: 3
    side = 64 >> (block if layer.startswith("pool") else block - 1)
    net = build_feature_network("craft_vgg16_bn", layer, "random")
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[block]
    assert net(torch.rand(1, 3, 64, 64)).shape == (1, channels, side, side)
    assert net.layer == layer and len(net.body) == CRAFT_LAYERS.index(layer) + 2  # + normalisation


def test_craft_module_paths_name_the_same_layers() -> None:
    assert build_feature_network("craft_vgg16_bn", "features.22", "random").layer == "relu3_3"
    assert build_feature_network("craft_vgg16_bn", None, "random").layer == "relu3_3"
    assert default_input_size("craft_vgg16_bn") == 224
    with pytest.raises(ValueError, match="unknown craft_vgg16_bn layer 'features.40'"):
        build_feature_network("craft_vgg16_bn", "features.40", "random")


@pytest.mark.parametrize("network, layer", [("alexnet", "conv2"), ("dsift", None)])
def test_device_is_where_the_weights_are_with_or_without_buffers(network: str, layer: str | None) -> None:
    # AlexNet has parameters and no buffers, dense SIFT the opposite; the targets' features are
    # computed on this device, so looking at buffers alone sent AlexNet's inputs to the CPU on a GPU.
    net = build_feature_network(network, layer, "random")
    assert net.device == torch.device("cpu")
    assert net.to("meta").device == torch.device("meta")
