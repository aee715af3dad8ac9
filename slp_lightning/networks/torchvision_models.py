"""Any torchvision classification model, read at any node by its module path (``features.16``)."""

from __future__ import annotations

from functools import cache

import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from slp_lightning.networks.base import FeatureNetwork, imagenet_normalize
from slp_lightning.networks.weights import load_weights

INPUT_SIZE = 224


def classification_models() -> list[str]:
    """The architectures torchvision's classification API builds (``vgg16``, ``resnet50``, …)."""
    return torchvision.models.list_models(module=torchvision.models)


def _check_arch(arch: str | None) -> str:
    if arch not in classification_models():
        raise ValueError(
            f"network 'torchvision' needs --model.arch, one of: {', '.join(classification_models())}"
            f"; got {arch!r}"
        )
    return arch


@cache
def torchvision_layers(arch: str | None) -> tuple[str, ...]:
    """Every node of ``arch`` whose output can be inverted, in execution order."""
    model = torchvision.models.get_model(_check_arch(arch))
    return tuple(get_graph_node_names(model.eval())[1][1:])  # [0] is the input itself


class _Node(nn.Module):
    """Returns one node's output of a feature-extractor graph, which returns a dict."""

    def __init__(self, extractor: nn.Module, node: str) -> None:
        super().__init__()
        self.extractor = extractor
        self.node = node

    def forward(self, images: Tensor) -> Tensor:
        return self.extractor(images)[self.node]


def build_torchvision(
    arch: str | None, layer: str, weights: str = "auto", weights_map: dict[str, str] | None = None
) -> FeatureNetwork:
    """``arch`` truncated after node ``layer`` (only what the node needs is kept and computed)."""
    arch = _check_arch(arch)
    body, description = load_weights(
        lambda: torchvision.models.get_model(arch), weights,
        torchvision.models.get_model_weights(arch), name=arch,
        truncate=lambda net: nn.Sequential(
            imagenet_normalize(), _Node(create_feature_extractor(net.eval(), [layer]), layer)
        ),
        weights_map=weights_map,
    )  # fmt: skip
    return FeatureNetwork(
        body,
        name=f"torchvision/{arch}",
        layer=layer,
        weights=description,
    )
