"""Where a user's model comes from: a Python object, an import path, a TorchScript or
``torch.export`` file, timm or Hugging Face transformers.

Each source turns its spec into a ``Loaded`` model with its input convention; ``network.py``
(``from_loaded``) reads it at a layer. The specs a string can be:

====================================== =================================================
``mypkg.models:Net`` (or ``file.py:Net``) an ``nn.Module`` class or factory (``network_args``)
``client.pt`` / ``client.pt2``         a TorchScript file / a ``torch.export`` archive
``timm:resnet18``                      a timm model (extra ``timm``)
``hf:path/to/folder``                  a transformers vision model, local files only (extra ``hf``)
====================================== =================================================
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slp_lightning.networks.hooks import closest_names
from slp_lightning.networks.weights import OFFLINE_ENV, RANDOM_SEED, warn_random

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXPORT_SUFFIXES = (".pt2",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")


@dataclass
class Loaded:
    """A model as its source gives it, with the input convention its source knows.

    ``mean``/``std`` standardise [0, 1] images (``None``: the model takes [0, 1]); ``weights``
    describes where the weights came from; ``hookable``: whether forward hooks see its
    submodules (not in TorchScript), ``layer_hint`` why not; ``batch`` the one batch size it
    takes, if it has one (an exported program); ``layer_aliases`` other names of layers (a
    transformer's ``3``: the module path of its ``hidden_states[3]``).
    """

    model: nn.Module
    name: str
    weights: str
    mean: Sequence[float] | None = IMAGENET_MEAN
    std: Sequence[float] | None = IMAGENET_STD
    input_size: int = 224
    hookable: bool = True
    layer_hint: str = ""
    batch: int | None = None
    layer_aliases: dict[str, str] = field(default_factory=dict)


def seeded(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global RNG at ``RANDOM_SEED`` and restored afterwards: every process
    and every run get the same random initialisation."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build()


def is_import_path(spec: str) -> bool:
    """``module:attribute``, the form of an import path (not a Windows drive, not a prefix)."""
    module, _, attribute = spec.partition(":")
    return bool(module and attribute) and not spec.startswith(("timm:", "hf:")) and len(module) > 1


def from_import_path(spec: str, network_args: dict[str, Any] | None) -> Loaded:
    """The module ``CALLABLE(**network_args)`` returns for ``spec`` = ``PKG.MODULE:CALLABLE``
    (``CALLABLE`` may be dotted, ``Net.from_config``; the module may be a ``.py`` file)."""
    target = import_object(spec)
    if not callable(target):
        raise ValueError(
            f"network {spec!r} is a {type(target).__name__}, not an nn.Module class or a factory"
        )
    args = dict(network_args or {})

    def build() -> nn.Module:
        try:
            model = target(**args)
        except Exception as error:  # noqa: BLE001 - the user's code may raise anything
            raise ValueError(
                f"network {spec!r}: calling it with network_args {args} raised "
                f"{type(error).__name__}: {error}"
            ) from None
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"network {spec!r} returned a {type(model).__name__}, not an nn.Module"
            )
        return model

    return Loaded(seeded(build), spec, f"{spec} as built (seed {RANDOM_SEED})")


def import_object(spec: str) -> Any:
    """The object ``PKG.MODULE:ATTR.SUB`` names; the module part may be a path to a ``.py`` file."""
    module_name, _, attribute = spec.partition(":")
    try:
        if module_name.endswith(".py"):
            module = _module_from_file(Path(module_name).expanduser())
        else:
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"network {spec!r}: cannot import {module_name!r} ({error}); put its folder on "
            f"PYTHONPATH, or give the file: path/to/file.py:{attribute}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"network {spec!r}: {module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def _module_from_file(path: Path) -> Any:
    if not path.is_file():
        raise ImportError(f"no file {path}")
    name = f"slp_lightning_user_{path.stem}"
    specification = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(specification)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    specification.loader.exec_module(module)
    return module


def is_model_file(spec: str) -> bool:
    """A TorchScript or ``torch.export`` file."""
    return spec.lower().endswith(EXPORT_SUFFIXES + TORCHSCRIPT_SUFFIXES)


def from_file(spec: str) -> Loaded:
    """A TorchScript file (``torch.jit.save``), read at its output, or a ``torch.export`` archive
    (``.pt2``), unflattened so that its submodules can be read; the weights are the file's."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(f"network file {spec} does not exist")
    if path.suffix.lower() in EXPORT_SUFFIXES:
        try:
            program = torch.export.load(path)
        except Exception as error:  # noqa: BLE001 - a corrupt archive fails in many ways
            raise ValueError(
                f"cannot read {spec} as a torch.export archive ({type(error).__name__}: {error})"
            ) from None
        model = torch.export.unflatten(program)
        batch, size = _export_input_shape(program)
        return Loaded(
            model, path.name, f"{path.name} (its own)", input_size=size or 224, batch=batch
        )
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - a corrupt archive fails in many ways
        raise ValueError(
            f"cannot read {spec} as a TorchScript file ({type(error).__name__}); expected a file "
            f"saved with torch.jit.save (a state dict goes to weights, not network)"
        ) from None
    return Loaded(
        model, path.name, f"{path.name} (its own)", hookable=False,
        layer_hint="a TorchScript file is read at its output: hooks do not see its compiled submodules",
    )  # fmt: skip


def _export_input_shape(program: torch.export.ExportedProgram) -> tuple[int | None, int | None]:
    """The batch size and the side of the (N, C, S, S) images an exported program was exported
    for, where they are static (``None`` where dynamic or unknown)."""
    for node in program.graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" else None
        if (
            node.op == "placeholder"
            and node.name in program.graph_signature.user_inputs
            and value is not None
        ):
            shape = tuple(value.shape)
            if len(shape) != 4:
                return None, None
            static = [int(d) if isinstance(d, int) else None for d in (shape[0], shape[-1])]
            return static[0], static[1]
    return None, None


def optional_import(module: str, extra: str, spec: str) -> Any:
    """The package ``module`` of the extra ``extra``, or an error saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ValueError(
            f'network {spec!r} needs {module}: pip install "slp_lightning[{extra}]"'
        ) from None


def from_timm(spec: str, weights: str, network_args: dict[str, Any] | None) -> Loaded:
    """``timm:NAME``: ``timm.create_model(NAME, **network_args)``; weights ``auto`` are timm's
    pretrained ones from its cache (never downloaded with ``SLP_LIGHTNING_OFFLINE=1``)."""
    timm = optional_import("timm", "timm", spec)
    name = spec.removeprefix("timm:")
    if name not in timm.list_models():
        closest = ", ".join(closest_names(name, timm.list_models()))
        raise ValueError(f"network {spec!r}: timm has no model {name!r}; closest: {closest}")
    args = dict(network_args or {})

    def build(pretrained: bool) -> nn.Module:
        return timm.create_model(name, pretrained=pretrained, **args)

    model, description = None, f"timm {name} random (seed {RANDOM_SEED})"
    if weights == "auto":
        try:
            with _hub_offline(bool(os.environ.get(OFFLINE_ENV))):
                model, description = build(True), f"timm {name} pretrained"
        except Exception as error:  # noqa: BLE001 - any failure to obtain the file is reported
            warn_random(f"timm {name}", f"pretrained weights are not available ({type(error).__name__})",
                        "Put them in the Hugging Face cache or pass --model.weights FILE.")  # fmt: skip
    if model is None:
        model = seeded(lambda: build(False))
    config = getattr(model, "pretrained_cfg", {}) or {}
    return Loaded(
        model, f"timm/{name}", description,
        mean=tuple(config.get("mean", IMAGENET_MEAN)), std=tuple(config.get("std", IMAGENET_STD)),
        input_size=int(config.get("input_size", (3, 224, 224))[-1]),
    )  # fmt: skip


class _hub_offline:  # noqa: N801 - used as a context manager, like contextlib's
    """Hugging Face hub offline (no request at all) while inside, when ``on``."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        if self.on:
            import huggingface_hub.constants as constants

            self.before = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True

    def __exit__(self, *exc: object) -> None:
        if self.on:
            import huggingface_hub.constants as constants

            constants.HF_HUB_OFFLINE = self.before


def from_huggingface(spec: str, weights: str) -> Loaded:
    """``hf:FOLDER_OR_NAME``: a transformers vision model (``AutoModel``) from a local folder or
    the cache, never downloaded; mean and std from its ``preprocessor_config.json`` when present."""
    transformers = optional_import("transformers", "hf", spec)
    source = spec.removeprefix("hf:")
    try:
        if weights == "random":
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
            model = seeded(lambda: transformers.AutoModel.from_config(config))
            description = f"{source} random (seed {RANDOM_SEED})"
        else:
            model = transformers.AutoModel.from_pretrained(source, local_files_only=True)
            description = f"{source} (its own)"
    except OSError as error:
        raise ValueError(
            f"network {spec!r}: no local model there ({error})".splitlines()[0]
        ) from None
    processor = Path(source) / "preprocessor_config.json"
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if processor.is_file():
        settings = json.loads(processor.read_text())
        mean, std = settings.get("image_mean", mean), settings.get("image_std", std)
    size = getattr(model.config, "image_size", 224)
    return Loaded(model, f"hf/{Path(source).name}", description, mean=tuple(mean), std=tuple(std),
                  input_size=int(size if isinstance(size, int) else size[-1]),
                  layer_aliases=hidden_state_paths(model))  # fmt: skip


def hidden_state_paths(model: nn.Module) -> dict[str, str]:
    """``{"0": embeddings, "1": first block, …}``: the module whose output is each entry of a
    transformers model's ``hidden_states``, found as its list of ``num_hidden_layers`` blocks."""
    count = getattr(model.config, "num_hidden_layers", None)
    blocks = next(
        (
            path
            for path, module in model.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) == count
        ),
        None,
    )
    if blocks is None:
        return {}
    paths = {str(i + 1): f"{blocks}.{i}" for i in range(count)}
    if hasattr(model, "embeddings"):
        paths["0"] = "embeddings"
    return paths
