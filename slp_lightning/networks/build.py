"""Any network read at a layer: ``build_feature_network`` turns a name of the registry, a
``FeatureNetwork``, an ``nn.Module`` or a model's spec (``sources.py``, ``hub_sources.py``) and a
layer into a frozen extractor, refusing the options that network does not take.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from slp_lightning.errors import ArgumentError
from slp_lightning.networks import hub_sources, sources
from slp_lightning.networks.base import FeatureNetwork
from slp_lightning.networks.hooks import unknown_layer_error
from slp_lightning.networks.module_network import (
    Convention,
    ModuleNetwork,
    from_loaded,
    from_object,
)
from slp_lightning.networks.registry import NETWORKS, layer_names, registered, unknown_network

Network = str | nn.Module  # a name, a spec, or the model itself


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
TORCHVISION_OPTIONS = ("network_args", "output", "tokens")


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
    entry = registered(network)
    allowed = TORCHVISION_OPTIONS if network == "torchvision" else ()
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
    raise unknown_network(spec)


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
