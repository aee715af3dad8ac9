"""Every layer of a network with its output shape (``--model.layer list``): a model's module
paths found by one forward with hooks, or a named network's layers, each built on the meta device.
"""

from __future__ import annotations

from typing import Any

import torch

from slp_lightning.networks.build import TORCHVISION_OPTIONS, Network, build_feature_network
from slp_lightning.networks.module_network import ModuleNetwork
from slp_lightning.networks.registry import NETWORKS, default_input_size, layer_names, registered
from slp_lightning.networks.torchvision_models import build_torchvision


@torch.no_grad()
def layer_listing(
    network: Network, image_size: int | None = None, arch: str | None = None, **options: Any
) -> list[tuple[str, str]]:
    """``(layer, output shape)`` for every layer of ``network`` at ``image_size`` (``None``: the
    network's input size): every module path in execution order for a model (one forward with
    hooks), or the names of a named network (each built on the meta device: shapes without
    weights or compute). ``options`` are ``build_feature_network``'s."""
    if network == "torchvision":
        tv_options = {k: v for k, v in options.items() if k in TORCHVISION_OPTIONS}
        return build_torchvision(arch, None, "random", **tv_options).layer_shapes(image_size or 224)
    if isinstance(network, str) and network in NETWORKS:
        size = image_size or default_input_size(network)
        return [(name, _meta_shape(network, name, size)) for name in layer_names(network)]
    built = build_feature_network(network, None, **options)
    if not isinstance(built, ModuleNetwork):
        raise ValueError(f"{built.name} is built for one layer, {built.layer!r}")
    return built.layer_shapes(image_size or built.input_size)


def _meta_shape(network: str, layer: str, image_size: int) -> str:
    with torch.device("meta"):
        built = registered(network).build(layer, "random", None, None)
        try:
            return str(
                tuple(built(torch.zeros(1, built.in_channels, image_size, image_size)).shape)
            )
        except RuntimeError as error:
            return f"none at {image_size} px ({str(error).splitlines()[0]})"
