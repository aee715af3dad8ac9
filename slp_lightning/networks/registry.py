"""The registry of named networks: each name's builder, input size, layer names and default
layer, and the names' lookups (``layer_names``, ``default_input_size``, ``default_coarse_lr``).

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
    build: Callable[..., FeatureNetwork]
    input_size: int
    layers: Callable[[str | None], tuple[str, ...]]  # arch -> valid layer names
    default_layer: str | None = None
    # The learning rate of the coarse phases, a share of the optimiser's (FeatureInversion's
    # coarse_lr): the one setting that must differ per network family (benchmarks/RESULTS.md,
    # "Levers measured").
    coarse_lr: float = 1.0


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
        dsift.INPUT_SIZE, _fixed(dsift.LAYERS), "descriptors", coarse_lr=0.2,
    ),
    "torchvision": _Network(
        lambda layer, weights, arch, weights_map, **options: build_torchvision(
            arch, layer, weights, weights_map, **options
        ),
        224, torchvision_layers,
    ),
    craft.NETWORK: _Network(
        lambda layer, weights, arch, weights_map: craft.build_craft(layer, weights, weights_map),
        craft.INPUT_SIZE, _fixed((*craft.LAYERS, *craft.MODULE_PATHS)), "relu3_3",
    ),
}  # fmt: skip


def registered(network: str) -> _Network:
    """The registry's entry of ``network``; :func:`unknown_network`'s error if it has none."""
    if network not in NETWORKS:
        raise unknown_network(network)
    return NETWORKS[network]


def unknown_network(network: str) -> ValueError:
    """The error for a ``network`` that is neither a registered name nor a model's spec."""
    return ValueError(
        f"unknown network {network!r}; valid networks: {', '.join(NETWORKS)}, or a model: "
        f"PKG.MODULE:CALLABLE, a TorchScript/.pt2 file, timm:NAME, hf:FOLDER"
    )


def layer_names(network: str, arch: str | None = None) -> tuple[str, ...]:
    """The layer names ``network`` (with ``arch`` for ``torchvision``) accepts."""
    return registered(network).layers(arch)


def default_coarse_lr(network: str) -> float:
    """The coarse phases' learning rate (a share of the optimiser's) ``network`` inverts best
    with: its registry entry's, 1 for a model of one's own."""
    return NETWORKS[network].coarse_lr if network in NETWORKS else 1.0


def default_input_size(network: str) -> int:
    """The input size (square, px) that ``network`` was made for."""
    return registered(network).input_size
