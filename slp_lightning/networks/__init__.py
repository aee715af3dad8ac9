"""Feature networks by name: one registry turns ``network``/``layer`` names into extractors.

=============== ============================================ ========= ===================
network         what                                         input     layers
=============== ============================================ ========= ===================
``alexnet``     torchvision AlexNet (no LRN)                 224       conv1 … fc8
``alexnet_caffe`` the paper's CaffeNet, 20 layers with LRN   227       conv1 … norm1 … fc8
``dsift``       dense SIFT, grey, 128-d                      128       descriptors
``dsift_color`` dense SIFT on R, G, B, 384-d                 128       descriptors
``torchvision`` any classification model (``arch``)          224       module paths
``craft_vgg16_bn`` CRAFT's VGG16-BN, fine-tuned for text     224       conv1_1 … relu5_2
=============== ============================================ ========= ===================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slp_lightning.networks import alexnet, caffenet, craft, dsift
from slp_lightning.networks.base import FeatureNetwork
from slp_lightning.networks.torchvision_models import build_torchvision, torchvision_layers


@dataclass(frozen=True)
class _Network:
    # (layer, weights, arch, weights_map)
    build: Callable[[str, str, str | None, dict[str, str] | None], FeatureNetwork]
    input_size: int
    layers: Callable[[str | None], tuple[str, ...]]  # arch -> valid layer names
    default_layer: str | None = None


def _fixed(names: tuple[str, ...]) -> Callable[[str | None], tuple[str, ...]]:
    return lambda arch: names


NETWORKS: dict[str, _Network] = {
    "alexnet": _Network(
        lambda layer, weights, arch, weights_map: alexnet.build_alexnet(layer, weights, weights_map),
        alexnet.INPUT_SIZE, _fixed((*alexnet.LAYERS, *alexnet.ALIASES)), "conv5",
    ),
    "alexnet_caffe": _Network(
        lambda layer, weights, arch, weights_map: caffenet.build_caffenet(layer, weights, weights_map),
        caffenet.INPUT_SIZE, _fixed((*caffenet.LAYERS, *caffenet.ALIASES)), "conv5",
    ),
    "dsift": _Network(
        lambda layer, weights, arch, weights_map: dsift.build_dsift(False, layer, weights),
        dsift.INPUT_SIZE, _fixed(dsift.LAYERS), "descriptors",
    ),
    "dsift_color": _Network(
        lambda layer, weights, arch, weights_map: dsift.build_dsift(True, layer, weights),
        dsift.INPUT_SIZE, _fixed(dsift.LAYERS), "descriptors",
    ),
    "torchvision": _Network(
        lambda layer, weights, arch, weights_map: build_torchvision(arch, layer, weights, weights_map),
        224, torchvision_layers,
    ),
    craft.NETWORK: _Network(
        lambda layer, weights, arch, weights_map: craft.build_craft(layer, weights, weights_map),
        craft.INPUT_SIZE, _fixed((*craft.LAYERS, *craft.MODULE_PATHS)), "relu3_3",
    ),
}  # fmt: skip


def _entry(network: str) -> _Network:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; valid networks: {', '.join(NETWORKS)}")
    return NETWORKS[network]


def layer_names(network: str, arch: str | None = None) -> tuple[str, ...]:
    """The layer names ``network`` (with ``arch`` for ``torchvision``) accepts."""
    return _entry(network).layers(arch)


def build_feature_network(
    network: str,
    layer: str | None,
    weights: str = "auto",
    arch: str | None = None,
    weights_map: dict[str, str] | None = None,
) -> FeatureNetwork:
    """The frozen ``network`` truncated after ``layer`` (``None``: the network's default layer,
    conv5 for AlexNets), with weights as ``weights`` says; ``weights_map`` renames the keys of a
    weights file (regex -> replacement, in order)."""
    entry = _entry(network)
    layer = layer or entry.default_layer
    if arch is not None and network != "torchvision":
        raise ValueError(f"--model.arch is for network 'torchvision' only; network is {network!r}")
    valid = entry.layers(arch)
    if layer is None:
        raise ValueError(f"network {network!r} needs --model.layer; valid layers: {', '.join(valid)}")
    if layer not in valid:
        owners = [n for n in NETWORKS if n not in (network, "torchvision") and layer in layer_names(n)]
        hint = f" ({layer!r} is a layer of {' and '.join(owners)})" if owners else ""
        raise ValueError(
            f"unknown {network} layer {layer!r}{hint}; valid layers: {', '.join(valid)}"
        )
    return entry.build(layer, weights, arch, weights_map)


def default_input_size(network: str) -> int:
    """The input size (square, px) that ``network`` was made for."""
    return _entry(network).input_size


__all__ = ["NETWORKS", "FeatureNetwork", "build_feature_network", "default_input_size", "layer_names"]
