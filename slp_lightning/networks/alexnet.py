"""torchvision's AlexNet (no LRN, 224×224 input) with the paper's layer names."""

from __future__ import annotations

from torch import nn
from torchvision.models import AlexNet_Weights, alexnet

from slp_lightning.networks.base import FeatureNetwork, imagenet_normalize
from slp_lightning.networks.weights import load_weights

INPUT_SIZE = 224
# Name -> (part of torchvision's AlexNet, index in it). Dropout layers are left out: the network
# is frozen, and in eval mode they are the identity.
LAYERS: dict[str, tuple[str, int]] = {
    "conv1": ("features", 0), "relu1": ("features", 1), "pool1": ("features", 2),
    "conv2": ("features", 3), "relu2": ("features", 4), "pool2": ("features", 5),
    "conv3": ("features", 6), "relu3": ("features", 7),
    "conv4": ("features", 8), "relu4": ("features", 9),
    "conv5": ("features", 10), "relu5": ("features", 11), "pool5": ("features", 12),
    "fc6": ("classifier", 1), "relu6": ("classifier", 2),
    "fc7": ("classifier", 4), "relu7": ("classifier", 5), "fc8": ("classifier", 6),
}  # fmt: skip
ALIASES = {"mpool1": "pool1", "mpool2": "pool2", "mpool5": "pool5"}


def build_alexnet(
    layer: str, weights: str = "auto", weights_map: dict[str, str] | None = None
) -> FeatureNetwork:
    """AlexNet truncated after ``layer`` (a paper name or alias), with ImageNet normalisation."""
    name = ALIASES.get(layer, layer)
    part, index = LAYERS[name]

    def truncate(net: nn.Module) -> nn.Module:
        layers = [imagenet_normalize()]
        if part == "features":
            layers += net.features[: index + 1]
        else:
            layers += [*net.features, net.avgpool, nn.Flatten()]
            layers += [m for m in net.classifier[: index + 1] if not isinstance(m, nn.Dropout)]
        return nn.Sequential(*layers)

    body, description = load_weights(
        alexnet,
        weights,
        AlexNet_Weights,
        name="AlexNet",
        truncate=truncate,
        weights_map=weights_map,
        reuse="alexnet",
    )
    return FeatureNetwork(
        body,
        name="alexnet",
        layer=name,
        weights=description,
    )
