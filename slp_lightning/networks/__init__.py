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

Any other network is an object or a spec (``sources``): an ``nn.Module``, ``PKG.MODULE:CALLABLE``,
a TorchScript or ``torch.export`` file, ``timm:NAME``, ``hf:FOLDER``; its layers are module paths
read by a forward hook (``hooks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slp_lightning.errors import ArgumentError
from slp_lightning.networks import alexnet, caffenet, craft, dsift, hub_sources, sources
from slp_lightning.networks.base import FeatureNetwork
from slp_lightning.networks.hooks import unknown_layer_error
from slp_lightning.networks.module_network import (
    Convention,
    ModuleNetwork,
    from_loaded,
    from_object,
)
from slp_lightning.networks.torchvision_models import build_torchvision, torchvision_layers

Network = str | nn.Module  # a name, a spec, or the model itself


@dataclass(frozen=True)
class _Network:
    # (layer, weights, arch, weights_map)
    build: Callable[..., FeatureNetwork]
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


def _entry(network: str) -> _Network:
    if network not in NETWORKS:
        raise _unknown_network(network)
    return NETWORKS[network]


def _unknown_network(network: str) -> ValueError:
    return ValueError(
        f"unknown network {network!r}; valid networks: {', '.join(NETWORKS)}, or a model: "
        f"PKG.MODULE:CALLABLE, a TorchScript/.pt2 file, timm:NAME, hf:FOLDER"
    )


def layer_names(network: str, arch: str | None = None) -> tuple[str, ...]:
    """The layer names ``network`` (with ``arch`` for ``torchvision``) accepts."""
    return _entry(network).layers(arch)


# Options of a model read by hooks; a named network has its own input convention.
LAYER_OPTIONS = (
    "weights",
    "weights_map",
    "network_args",
    "in_channels",
    "input_mean",
    "input_std",
    "output",
    "tokens",
)
_TORCHVISION_OPTIONS = ("network_args", "output", "tokens")


def build_feature_network(
    network: Network,
    layer: str | None,
    weights: str = "auto",
    arch: str | None = None,
    weights_map: dict[str, str] | None = None,
    *,
    network_args: dict[str, Any] | None = None,
    in_channels: int | None = None,
    input_mean: Convention = None,
    input_std: Convention = None,
    output: str | int | None = None,
    tokens: str | None = None,
) -> FeatureNetwork:
    """The frozen ``network`` read at ``layer`` (``None``: the network's default layer, conv5 for
    AlexNets; a model's own output), with weights as ``weights`` says; ``weights_map`` renames the
    keys of a weights file (regex -> replacement, in order).

    ``network`` is a name of ``NETWORKS``, a ``FeatureNetwork`` (used as it is, or read at another
    layer), any ``nn.Module``, or a spec of ``sources``. For models: ``network_args`` are the
    keyword arguments of a class or factory (or of a torchvision ``arch``), ``in_channels`` (3)
    and ``input_mean`` / ``input_std`` their input convention (numbers per channel, ``'none'``
    for [0, 1]; ``None``: the source's, ImageNet's for a plain module), ``output`` the entry of a
    tuple/dict output and ``tokens`` (``all``/``cls``/``patch``) how token features are read.
    """
    options = {"network_args": network_args, "in_channels": in_channels, "input_mean": input_mean,
               "input_std": input_std, "output": output, "tokens": tokens}  # fmt: skip
    module_settings = {k: v for k, v in options.items() if k != "network_args"}
    module_settings.update(weights=weights, weights_map=weights_map)
    if isinstance(network, FeatureNetwork):  # built already: arch and network_args made it
        return _at_layer(network, layer, output, tokens)
    if not isinstance(network, str) or network not in NETWORKS:
        _check_model_options(network, arch, network_args)
    if isinstance(network, nn.Module):
        return from_object(network, layer, **module_settings)
    if network not in NETWORKS:
        loaded = _load_source(network, weights, network_args)
        return from_loaded(loaded, layer, **module_settings)
    entry = _entry(network)
    allowed = _TORCHVISION_OPTIONS if network == "torchvision" else ()
    given = [k for k, v in options.items() if v is not None and k not in allowed]
    if given:
        raise ValueError(
            f"{', '.join(given)}: for a model of your own, not network {network!r}, which has its own"
        )
    layer = layer or entry.default_layer
    if arch is not None and network != "torchvision":
        raise ArgumentError(
            f"arch is for network 'torchvision' only; network is {network!r}",
            "FeatureInversion.arch",
        )
    valid = entry.layers(arch)
    if layer is None:
        raise ArgumentError(
            f"network {network!r} needs a layer; valid layers: {', '.join(valid)}",
            "FeatureInversion.layer",
        )
    if layer not in valid:
        if network == "torchvision":
            raise unknown_layer_error(f"torchvision {arch}", layer, valid)
        owners = [
            n for n in NETWORKS if n not in (network, "torchvision") and layer in layer_names(n)
        ]
        hint = f" ({layer!r} is a layer of {' and '.join(owners)})" if owners else ""
        raise ValueError(
            f"unknown {network} layer {layer!r}{hint}; valid layers: {', '.join(valid)}"
        )
    extra = {k: options[k] for k in allowed}
    built = entry.build(layer, weights, arch, weights_map, **extra)
    built.input_size = entry.input_size
    return built


def _load_source(spec: str, weights: str, network_args: dict[str, Any] | None) -> sources.Loaded:
    if spec.startswith("timm:"):
        return hub_sources.from_timm(spec, weights, network_args)
    if spec.startswith("hf:"):
        return hub_sources.from_huggingface(spec, weights)
    if sources.is_model_file(spec):
        return sources.from_file(spec)
    if sources.is_import_path(spec):
        return sources.from_import_path(spec, network_args)
    raise _unknown_network(spec)


def _check_model_options(
    network: Network, arch: str | None, network_args: dict[str, Any] | None
) -> None:
    """Refuse the options a model's source does not take, rather than ignore them."""
    if arch is not None:
        raise ValueError(f"arch is for network 'torchvision' only; network is {_label(network)}")
    takes_args = isinstance(network, str) and (
        network.startswith("timm:") or sources.is_import_path(network)
    )
    if network_args and not takes_args:
        raise ValueError(
            f"network_args are for a class or factory (PKG.MODULE:CALLABLE), timm:NAME or a torchvision "
            f"arch; {_label(network)} is built already"
        )


def _label(network: Network) -> str:
    return repr(network) if isinstance(network, str) else f"a {type(network).__name__} object"


def _at_layer(
    network: FeatureNetwork, layer: str | None, output: str | int | None, tokens: str | None
) -> FeatureNetwork:
    """``network`` itself, or the same model read at ``layer`` (and ``output``, ``tokens``; ``None``
    keeps the network's) when it can be."""
    if isinstance(network, ModuleNetwork):
        reader = network.reader
        wanted = (
            reader.layer if layer is None else network.layer_aliases.get(layer, layer),
            reader.output if output is None else output,
            reader.tokens if tokens is None else tokens,
        )
        return (
            network
            if wanted == (reader.layer, reader.output, reader.tokens)
            else network.at_layer(*wanted)
        )
    if layer is None or layer == network.layer:
        return network
    raise ValueError(f"{network.name} is built for layer {network.layer!r}; build it for {layer!r}")


def default_input_size(network: str) -> int:
    """The input size (square, px) that ``network`` was made for."""
    return _entry(network).input_size


@torch.no_grad()
def layer_listing(
    network: Network, image_size: int | None = None, arch: str | None = None, **options: Any
) -> list[tuple[str, str]]:
    """``(layer, output shape)`` for every layer of ``network`` at ``image_size`` (``None``: the
    network's input size): every module path in execution order for a model (one forward with
    hooks), or the names of a named network (each built on the meta device: shapes without
    weights or compute). ``options`` are ``build_feature_network``'s."""
    if network == "torchvision":
        tv_options = {k: v for k, v in options.items() if k in _TORCHVISION_OPTIONS}
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
        built = _entry(network).build(layer, "random", None, None)
        try:
            return str(
                tuple(built(torch.zeros(1, built.in_channels, image_size, image_size)).shape)
            )
        except RuntimeError as error:
            return f"none at {image_size} px ({str(error).splitlines()[0]})"


__all__ = [
    "LAYER_OPTIONS", "NETWORKS", "FeatureNetwork", "ModuleNetwork", "Network", "build_feature_network",
    "default_input_size", "layer_listing", "layer_names",
]  # fmt: skip
