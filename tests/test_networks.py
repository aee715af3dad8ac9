"""The paper's networks and torchvision models, through the one registry and the inversion module."""

import pytest
import torch

from slp_lightning import FeatureInversion
from slp_lightning.cli.commands import flag
from slp_lightning.data.images import load_image
from slp_lightning.networks import build_feature_network, default_input_size, layer_names
from slp_lightning.networks.caffenet import LAYERS as CAFFE_LAYERS

from helpers import short_inversion, slow_but


@pytest.fixture(scope="module")
def coffee_227() -> torch.Tensor:
    return load_image("skimage:coffee", 227)[None]


@pytest.mark.parametrize("layer", slow_but(CAFFE_LAYERS, "conv5"))  # 1-5 s each, ~30 s in all
def test_every_paper_layer_inverts_on_alexnet_caffe(layer: str, coffee_227: torch.Tensor) -> None:
    model = FeatureInversion(network="alexnet_caffe", layer=layer, weights="random", init_noise=0.1)
    losses = short_inversion(model, coffee_227)
    assert losses[-1] < losses[0], f"{layer}: {losses}"


@pytest.mark.parametrize(
    ("arch", "layer"),
    [pytest.param("vgg16", "features.3", marks=pytest.mark.slow), ("resnet50", "layer1.0.relu")],
)
def test_torchvision_models_invert_at_a_shallow_layer(arch: str, layer: str) -> None:
    assert layer in layer_names("torchvision", arch)
    model = FeatureInversion(
        network="torchvision",
        arch=arch,
        layer=layer,
        weights="random",
        image_size=32,
        pyramid_levels=3,
    )
    losses = short_inversion(model, load_image("skimage:chelsea", 32)[None])
    assert losses[-1] < losses[0]
    assert model.network.name == f"torchvision/{arch}"


def test_grey_sift_inverts_a_grey_image_and_colour_sift_a_colour_one() -> None:
    image = load_image("skimage:astronaut", 48)[None]
    grey = FeatureInversion(network="dsift", image_size=48, pyramid_levels=3, init_noise=0.1)
    colour = FeatureInversion(
        network="dsift_color", image_size=48, pyramid_levels=3, init_noise=0.1
    )
    for model, channels, features in [(grey, 1, 128), (colour, 3, 384)]:
        losses = short_inversion(model, image)
        assert model.inversion.I_pre.shape == (1, channels, 48, 48)
        assert model.inversion.target_features.shape == (1, features, 5, 5)
        assert losses[-1] < losses[0]
    assert torch.allclose(grey.inversion.targets, image.mean(dim=1, keepdim=True))
    assert default_input_size("dsift") == 128 and grey.network.layer == "descriptors"


def test_layer_of_another_network_names_that_network() -> None:
    with pytest.raises(
        ValueError, match=r"'norm1' is a layer of alexnet_caffe\); valid layers: conv1"
    ):
        build_feature_network("alexnet", "norm1", "random")
    with pytest.raises(ValueError, match=r"'conv5' is a layer of alexnet and alexnet_caffe"):
        build_feature_network("dsift", "conv5")


def test_arch_is_checked() -> None:
    with pytest.raises(ValueError, match="needs arch, one of: .*vgg16") as error:
        build_feature_network("torchvision", "features.0", "random", arch="vgg99")
    assert error.value.named(flag).startswith("network 'torchvision' needs --model.arch, one of")
    with pytest.raises(ValueError, match="for network 'torchvision' only"):
        build_feature_network("alexnet", "conv1", "random", arch="vgg16")
    with pytest.raises(ValueError, match="needs a layer"):
        build_feature_network("torchvision", None, "random", arch="vgg16")


def test_sift_takes_no_weights_and_rejects_images_below_a_patch() -> None:
    with pytest.raises(ValueError, match="takes no weights"):
        build_feature_network("dsift", None, "/some/file.pth")
    with pytest.raises(
        ValueError, match="at least 16x16 px, got 8x8"
    ):  # at once, not at the first step
        FeatureInversion(network="dsift", image_size=8, pyramid_levels=2)


@pytest.mark.parametrize(
    ("network", "layer", "message"),
    [("alexnet", "conv9", "valid layers: conv1, relu1"), ("vgg99", "conv1", "valid networks")],
)
def test_unknown_names_list_the_valid_ones(network: str, layer: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_feature_network(network, layer, "random")
