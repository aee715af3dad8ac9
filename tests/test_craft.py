"""CRAFT's VGG16-BN backbone (networks/craft.py): its layers by name and by module path."""

import pytest
import torch

from slp_lightning.networks import build_feature_network, default_input_size
from slp_lightning.networks.craft import LAYERS as CRAFT_LAYERS

from helpers import slow_but


@pytest.mark.parametrize("layer", slow_but(CRAFT_LAYERS, "conv1_1", "relu3_3"))  # ~0.5 s each, 41
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
