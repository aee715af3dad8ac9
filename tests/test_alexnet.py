"""torchvision's AlexNet (networks/alexnet.py): the paper's layer names, shapes and ReLUs."""

import pytest
import torch

from slp_lightning.networks import build_feature_network, default_input_size
from slp_lightning.networks.alexnet import ALIASES, LAYERS

SHAPES_AT_224 = {
    "conv1": (64, 55, 55), "pool1": (64, 27, 27), "conv2": (192, 27, 27), "pool2": (192, 13, 13),
    "conv3": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
    "fc6": (4096,), "relu7": (4096,), "fc8": (1000,),
}  # fmt: skip


@pytest.mark.slow
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
