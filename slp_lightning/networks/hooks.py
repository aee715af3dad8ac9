"""Any ``nn.Module`` read at any layer: a forward hook on the module at a dotted path.

FX tracing fails on many real models (data-dependent branches, dynamic shapes); a hook works on
any model whose forward calls the module. The forward stops as soon as the layer has run, so
nothing past it is computed. A module called more than once in a forward is read at its first
call.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

TOKENS = ("all", "cls", "patch")
_CLOSEST = 5  # names an unknown layer's error suggests


class _LayerReached(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by the hook to stop the forward once the layer has run."""


def module_paths(model: nn.Module) -> tuple[str, ...]:
    """Every submodule's dotted path (``features.6``, ``layer3.1.conv2``), the model itself left out."""
    return tuple(name for name, _ in model.named_modules() if name)


def closest_names(name: str, names: Sequence[str], count: int = _CLOSEST) -> list[str]:
    """The ``count`` names closest to ``name`` (for "did you mean" in errors)."""
    return difflib.get_close_matches(name, names, n=count, cutoff=0.0)


def unknown_layer_error(model_name: str, layer: str, names: Sequence[str]) -> ValueError:
    """The error for a layer ``model_name`` has not got: the closest valid names, and how to list them."""
    return ValueError(
        f"{model_name} has no layer {layer!r}; closest: {', '.join(closest_names(layer, names))} "
        f"(layer 'list' prints every layer with its output shape)"
    )


def select_output(value: Any, output: str | int | None, where: str) -> Tensor:
    """The tensor in a layer's ``value``: ``value`` itself when it is a tensor, else its entry
    ``output`` (a key of a dict or ModelOutput, an index of a tuple or list)."""
    if output is None:
        if torch.is_tensor(value):
            return value
        raise ValueError(
            f"{where} gives a {_describe(value)}, not a tensor: choose one with output=KEY_OR_INDEX"
        )
    if isinstance(value, Mapping):
        key = str(output)
        if key not in value:
            raise ValueError(f"{where} gives a {_describe(value)}, which has no key {key!r}")
        chosen = value[key]
    elif isinstance(value, (tuple, list)):
        index = _index(output)
        if index is None or not -len(value) <= index < len(value):
            raise ValueError(
                f"{where} gives a {_describe(value)}: output={output!r} is not an index of it"
            )
        chosen = value[index]
    else:
        raise ValueError(
            f"{where} gives a {_describe(value)}, which has no entries; leave output unset"
        )
    if not torch.is_tensor(chosen):
        raise ValueError(f"{where}: entry {output!r} is a {_describe(chosen)}, not a tensor")
    return chosen


def _index(output: str | int) -> int | None:
    if isinstance(output, int):
        return output
    try:
        return int(output)
    except ValueError:
        return None


def _describe(value: Any) -> str:
    """A value's type and, for containers, what each entry is (``dict {'out': (1, 8, 4, 4), …}``)."""
    if torch.is_tensor(value):
        return f"tensor {tuple(value.shape)}"
    if isinstance(value, Mapping):
        entries = ", ".join(f"{k!r}: {_short(v)}" for k, v in value.items())
        return f"{type(value).__name__} {{{entries}}}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} ({', '.join(_short(v) for v in value)})"
    return type(value).__name__


def _short(value: Any) -> str:
    return str(tuple(value.shape)) if torch.is_tensor(value) else type(value).__name__


def select_tokens(
    features: Tensor, tokens: str | None, prefix_tokens: int | None, where: str
) -> Tensor:
    """Token features (N, T, D) of a Vision Transformer as ``tokens`` says: ``all`` as they are,
    ``cls`` the first token (N, D), ``patch`` the patch tokens as a grid (N, D, h, w), the
    ``prefix_tokens`` before them (class and register tokens) left out."""
    if tokens is None:
        return features
    if tokens not in TOKENS:
        raise ValueError(f"unknown tokens {tokens!r}; valid: {', '.join(TOKENS)}")
    if features.dim() != 3:
        raise ValueError(
            f"tokens={tokens!r} needs token features (N, T, D); {where} gives {tuple(features.shape)}"
        )
    if tokens == "all":
        return features
    if tokens == "cls":
        return features[:, 0]
    count = features.shape[1]
    prefix = _prefix(count) if prefix_tokens is None else prefix_tokens
    side = math.isqrt(count - prefix) if prefix is not None and count > prefix else 0
    if prefix is None or side * side != count - prefix:
        raise ValueError(
            f"tokens='patch': the {count} tokens of {where} are no square grid after "
            f"{prefix if prefix is not None else 'its'} class/register tokens"
        )
    return features[:, prefix:].transpose(1, 2).unflatten(2, (side, side))


def _prefix(count: int) -> int | None:
    """How many class/register tokens precede a square grid of patches: 1 (a class token) or 0."""
    for prefix in (1, 0):
        if math.isqrt(count - prefix) ** 2 == count - prefix:
            return prefix
    return None


class LayerReader(nn.Module):
    """``model``'s output at ``layer`` (a module path; ``None``: the model's own output), read by
    a forward hook: images (N, C, H, W), already in the model's input convention -> features.

    ``output`` picks the tensor of a layer that gives a tuple, list, dict or ModelOutput;
    ``tokens`` turns token features (N, T, D) into ``all`` / ``cls`` / ``patch`` (see
    :func:`select_tokens`). ``batch``: the one batch size the model takes (an exported program of
    static shapes); other batches are read ``batch`` images at a time.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | None,
        *,
        output: str | int | None = None,
        tokens: str | None = None,
        name: str | None = None,
        batch: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.batch = batch
        self.layer = layer
        self.output = output
        self.tokens = tokens
        self.where = f"{name or type(model).__name__} " + (
            f"layer {layer!r}" if layer else "output"
        )
        if layer is not None:
            modules = dict(model.named_modules())
            if layer not in modules or not layer:
                raise unknown_layer_error(name or type(model).__name__, layer, module_paths(model))
            self._target = [modules[layer]]  # a list: not registered twice as a submodule

    def forward(self, images: Tensor) -> Tensor:
        if self.batch is None or len(images) == self.batch:
            return self._features(images)
        if len(images) % self.batch:
            raise ValueError(
                f"{self.where}: the model takes batches of {self.batch} images only, not {len(images)}; "
                f"export it with a dynamic batch size (torch.export's dynamic_shapes)"
            )
        return torch.cat([self._features(part) for part in images.split(self.batch)])

    def _features(self, images: Tensor) -> Tensor:
        value = self._layer_output(images) if self.layer is not None else self._call(images)
        features = select_output(value, self.output, self.where)
        return select_tokens(
            features, self.tokens, getattr(self.model, "num_prefix_tokens", None), self.where
        )

    def _call(self, images: Tensor) -> Any:
        try:
            return self.model(images)
        except TypeError as error:
            raise ValueError(
                f"{self.where}: the model cannot be called on images alone ({error}); wrap it in "
                f"a module whose forward(images) passes its other arguments"
            ) from None

    def _layer_output(self, images: Tensor) -> Any:
        captured: list[Any] = []

        def hook(module: nn.Module, args: Any, value: Any) -> None:  # noqa: ARG001 - a hook's signature
            captured.append(value)
            raise _LayerReached

        handle = self._target[0].register_forward_hook(hook)
        try:
            self._call(images)
        except _LayerReached:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(
                f"{self.where} did not run in the model's forward: choose a layer it calls"
            )
        return captured[0]


@torch.no_grad()
def layer_shapes(model: nn.Module, images: Tensor) -> list[tuple[str, str]]:
    """``(module path, output)`` for every submodule ``model(images)`` runs, in the order they
    finish, each once (its first call); the output as a shape ``(1, 64, 56, 56)`` or a
    description of a tuple or dict."""
    seen: dict[str, str] = {}
    names = {id(module): name for name, module in model.named_modules() if name}

    def hook(module: nn.Module, args: Any, value: Any) -> None:  # noqa: ARG001 - a hook's signature
        name = names.get(id(module))
        if name is not None and name not in seen:
            seen[name] = _short(value) if torch.is_tensor(value) else _describe(value)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        model(images)
    finally:
        handle.remove()
    return list(seen.items())
