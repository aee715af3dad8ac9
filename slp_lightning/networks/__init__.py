"""Feature networks by name: one registry turns ``network``/``layer`` names into extractors."""

from __future__ import annotations

from collections.abc import Callable

from slp_lightning.networks.alexnet import INPUT_SIZE as ALEXNET_INPUT_SIZE
from slp_lightning.networks.alexnet import build_alexnet
from slp_lightning.networks.base import FeatureNetwork

# network name -> (builder(layer, weights), default input size in px)
NETWORKS: dict[str, tuple[Callable[[str, str], FeatureNetwork], int]] = {
    "alexnet": (build_alexnet, ALEXNET_INPUT_SIZE),
}


def _entry(network: str) -> tuple[Callable[[str, str], FeatureNetwork], int]:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; valid networks: {', '.join(NETWORKS)}")
    return NETWORKS[network]


def build_feature_network(network: str, layer: str, weights: str = "auto") -> FeatureNetwork:
    """The frozen ``network`` truncated after ``layer``, with weights as ``weights`` says."""
    return _entry(network)[0](layer, weights)


def default_input_size(network: str) -> int:
    """The input size (square, px) that ``network`` was trained on."""
    return _entry(network)[1]


__all__ = ["NETWORKS", "FeatureNetwork", "build_feature_network", "default_input_size"]
