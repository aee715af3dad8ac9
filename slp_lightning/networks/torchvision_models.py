"""Any torchvision classification model, read at any layer: a module path (``features.6``) by a
forward hook, or a node of its FX graph (``features.6.add``) by a cut graph."""

from __future__ import annotations

from functools import cache
from typing import Any

import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from slp_lightning.errors import ArgumentError
from slp_lightning.networks.base import FeatureNetwork, imagenet_normalize
from slp_lightning.networks.hooks import module_paths
from slp_lightning.networks.module_network import ModuleNetwork
from slp_lightning.networks.weights import load_weights

INPUT_SIZE = 224


def classification_models() -> list[str]:
    """The architectures torchvision's classification API builds (``vgg16``, ``resnet50``, …)."""
    return torchvision.models.list_models(module=torchvision.models)


def _check_arch(arch: str | None) -> str:
    if arch not in classification_models():
        raise ArgumentError(
            f"network 'torchvision' needs arch, one of: {', '.join(classification_models())}; got {arch!r}",
            "FeatureInversion.arch",
        )
    return arch


def torchvision_layers(arch: str | None) -> tuple[str, ...]:
    """Every FX node of ``arch`` whose output can be inverted, in execution order, then every
    module path that is not also a node."""
    nodes, paths = _layer_names(_check_arch(arch))
    return (*nodes, *(path for path in paths if path not in nodes))


@cache
def _layer_names(arch: str) -> tuple[dict[str, None], tuple[str, ...]]:
    """The FX nodes of ``arch`` (an ordered set, its input left out) and its module paths, from
    one build of the model."""
    model = torchvision.models.get_model(arch).eval()
    return dict.fromkeys(get_graph_node_names(model)[1][1:]), module_paths(model)


class _Node(nn.Module):
    """Returns one node's output of a feature-extractor graph, which returns a dict."""

    def __init__(self, extractor: nn.Module, node: str) -> None:
        super().__init__()
        self.extractor = extractor
        self.node = node

    def forward(self, images: Tensor) -> Tensor:
        return self.extractor(images)[self.node]


def build_torchvision(
    arch: str | None,
    layer: str | None,
    weights: str = "auto",
    weights_map: dict[str, str] | None = None,
    *,
    network_args: dict[str, Any] | None = None,
    output: str | int | None = None,
    tokens: str | None = None,
) -> FeatureNetwork:
    """``arch`` (built with ``network_args``) read at ``layer``: an FX node of the default
    architecture keeps only what the node needs; a module path (or any layer with ``network_args``,
    ``output`` or ``tokens``) is read by a hook that stops the forward there; ``None`` reads the
    model's output."""
    arch = _check_arch(arch)
    args = dict(network_args or {})
    graph = (
        layer is not None
        and not (args or output is not None or tokens)
        and layer in _layer_names(arch)[0]
    )
    body, description = load_weights(
        lambda: torchvision.models.get_model(arch, **args), weights,
        torchvision.models.get_model_weights(arch), name=arch,
        truncate=(lambda net: nn.Sequential(
            imagenet_normalize(), _Node(create_feature_extractor(net.eval(), [layer]), layer)
        )) if graph else (lambda net: net),
        weights_map=weights_map, reuse=f"torchvision/{arch} {sorted(args.items())!r}",
    )  # fmt: skip
    name = f"torchvision/{arch}"
    if graph:
        return FeatureNetwork(body, name=name, layer=layer, weights=description)
    return ModuleNetwork(
        body,
        layer,
        name=name,
        weights=description,
        normalize=imagenet_normalize(),
        output=output,
        tokens=tokens,
    )
