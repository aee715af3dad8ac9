"""Where a user's model comes from when it is code or a file (an import path, a TorchScript or
``torch.export`` file), and ``Loaded``, what every source gives: the model with its input
convention, which ``module_network.from_loaded`` reads at a layer. The specs a string can be
(timm and Hugging Face: ``hub_sources.py``):

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
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slp_lightning.networks.weights import RANDOM_SEED

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


def import_object(spec: str, what: str = "network") -> Any:
    """The object ``PKG.MODULE:ATTR.SUB`` names; the module part may be a path to a ``.py`` file;
    ``what`` it is for names it in the errors."""
    module_name, _, attribute = spec.partition(":")
    try:
        if module_name.endswith(".py"):
            module = _module_from_file(Path(module_name).expanduser())
        else:
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"{what} {spec!r}: cannot import {module_name!r} ({error}); put its folder on "
            f"PYTHONPATH, or give the file: path/to/file.py:{attribute}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{what} {spec!r}: {module_name} has no attribute {attribute!r}")
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
