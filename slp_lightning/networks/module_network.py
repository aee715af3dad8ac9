"""A user's model as a ``FeatureNetwork``: its input convention, its weights, a layer read by a hook."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.transforms import v2

from slp_lightning.networks.base import FeatureNetwork
from slp_lightning.networks.hooks import LayerReader, layer_shapes, module_paths
from slp_lightning.networks.sources import IMAGENET_MEAN, IMAGENET_STD, Loaded, seeded
from slp_lightning.networks.state_dicts import load_file
from slp_lightning.networks.weights import RANDOM

NO_NORMALIZATION = "none"  # input_mean / input_std: the model takes [0, 1] as it is
IMAGENET = "imagenet"
Convention = Sequence[float] | str | None


class ModuleNetwork(FeatureNetwork):
    """Any ``nn.Module`` read at ``layer`` (a module path; ``None``: its output) by a forward hook,
    after ``normalize`` turns [0, 1] images into its input. ``at_layer`` reads another layer of
    the same module (a sweep builds and loads the model once)."""

    def __init__(
        self,
        model: nn.Module,
        layer: str | None,
        *,
        name: str,
        weights: str,
        normalize: nn.Module,
        in_channels: int = 3,
        input_size: int = 224,
        output: str | int | None = None,
        tokens: str | None = None,
        layer_hint: str = "",
        layer_aliases: dict[str, str] | None = None,
        batch: int | None = None,
    ) -> None:
        self.layer_aliases = dict(layer_aliases or {})
        layer = self.layer_aliases.get(layer, layer)
        if layer is not None and layer_hint:
            raise ValueError(
                f"{name}: layer {layer!r} cannot be read: {layer_hint}; leave layer unset"
            )
        reader = LayerReader(model, layer, output=output, tokens=tokens, name=name, batch=batch)
        super().__init__(
            nn.Sequential(normalize, reader), name=name, layer=layer or "output", weights=weights,
            in_channels=in_channels, input_size=input_size,
        )  # fmt: skip
        self.layer_hint = layer_hint

    @property
    def reader(self) -> LayerReader:
        """What reads the layer (its ``layer``, ``output`` and ``tokens``)."""
        return self.body[1]

    @property
    def model(self) -> nn.Module:
        """The whole model (every layer), shared by ``at_layer``'s networks."""
        return self.reader.model

    def at_layer(
        self, layer: str | None, output: str | int | None = None, tokens: str | None = None
    ) -> ModuleNetwork:
        """The same model (not a copy) read at another ``layer``."""
        return ModuleNetwork(
            self.model, layer, name=self.name, weights=self.weights, normalize=self.body[0],
            in_channels=self.in_channels, input_size=self.input_size, output=output, tokens=tokens,
            layer_hint=self.layer_hint, layer_aliases=self.layer_aliases, batch=self.reader.batch,
        )  # fmt: skip

    def layer_names(self) -> tuple[str, ...]:
        """The layers it can read: every module path, and the aliases of some."""
        return (*module_paths(self.model), *self.layer_aliases)

    def layer_shapes(self, image_size: int) -> list[tuple[str, str]]:
        images = torch.zeros(1, self.in_channels, image_size, image_size, device=self.device)
        return layer_shapes(self.model, self.body[0](images))


def from_loaded(
    loaded: Loaded,
    layer: str | None,
    *,
    weights: str = "auto",
    weights_map: dict[str, str] | None = None,
    in_channels: int | None = None,
    input_mean: Convention = None,
    input_std: Convention = None,
    output: str | int | None = None,
    tokens: str | None = None,
) -> ModuleNetwork:
    """``loaded`` with weights as ``weights`` says (``auto``: its own; ``random``: every layer's
    ``reset_parameters`` from a fixed seed; a path: a state dict, keys renamed by ``weights_map``)
    and the input convention given, where given, else its source's."""
    model = loaded.model
    description = _load(model, weights, weights_map, loaded)
    check_finite(model, f"{loaded.name} ({description})")
    channels = in_channels or 3
    mean = _convention(input_mean, loaded.mean, IMAGENET_MEAN, channels, "input_mean")
    std = _convention(input_std, loaded.std, IMAGENET_STD, channels, "input_std")
    if (mean is None) != (std is None):
        raise ValueError(
            f"input_mean and input_std are both 'none' or neither; got {input_mean!r} and {input_std!r}"
        )
    normalize = nn.Identity() if mean is None else v2.Normalize(mean=list(mean), std=list(std))
    return ModuleNetwork(
        model, layer, name=loaded.name, weights=description, normalize=normalize, in_channels=channels,
        input_size=loaded.input_size, output=output, tokens=tokens,
        layer_hint="" if loaded.hookable else loaded.layer_hint, layer_aliases=loaded.layer_aliases,
        batch=loaded.batch,
    )  # fmt: skip


def from_object(model: nn.Module, layer: str | None, **settings: object) -> ModuleNetwork:
    """A model given as a Python object; its weights are described by a digest of its tensors,
    so that a checkpoint is only resumed with the same ones."""
    if model.training:
        warnings.warn(
            f"{type(model).__name__} was in training mode; it is inverted in eval mode (dropout "
            f"off, batch-norm statistics frozen) and frozen",
            UserWarning,
            stacklevel=3,
        )
    name = type(model).__name__
    return from_loaded(
        Loaded(model, name, f"{name} as given (tensors sha256 {digest(model)})"), layer, **settings
    )


def check_finite(model: nn.Module, source: str) -> None:
    """Refuse a model with a NaN or an infinity in a floating tensor (parameters and buffers),
    whatever its weights came from (an object, a factory, a file): every feature, and so the
    loss, would be non-finite from the first step. Files are judged as they load
    (``state_dicts.load_needed``, up to the layer); a model's own weights, all of them, here."""
    broken = [
        key for key, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]  # fmt: skip
    if broken:
        shown = ", ".join(broken[:3]) + (f", … ({len(broken)} tensors)" if len(broken) > 3 else "")
        raise ValueError(
            f"{source}: {shown} {'holds' if len(broken) == 1 else 'hold'} NaN or infinite values; "
            f"accepted: finite weights only"
        )


def digest(model: nn.Module) -> str:
    """The first 12 hex digits of the sha256 of ``model``'s tensors, in state-dict order."""
    hasher = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        hasher.update(key.encode())
        hasher.update(
            tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        )
    return hasher.hexdigest()[:12]


def _load(
    model: nn.Module, weights: str, weights_map: dict[str, str] | None, loaded: Loaded
) -> str:
    if weights == "auto":
        return loaded.weights
    if not loaded.hookable:
        raise ValueError(f"{loaded.name} holds its own weights: leave weights 'auto'")
    if weights == "random":

        def reset() -> nn.Module:
            for module in model.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            return model

        seeded(reset)
        return RANDOM
    return load_file(model, model, weights, weights_map, loaded.name)


def _convention(
    given: Convention,
    own: Sequence[float] | None,
    imagenet: Sequence[float],
    channels: int,
    argument: str,
) -> tuple[float, ...] | None:
    """``given`` (numbers, ``'none'``, ``'imagenet'`` or ``None`` for the source's ``own``) as
    numbers per channel, or ``None`` for no standardisation."""
    if isinstance(given, str):
        if given.lower() not in (NO_NORMALIZATION, IMAGENET):
            raise ValueError(
                f"{argument} is {len(imagenet)} numbers, 'imagenet' or 'none'; got {given!r}"
            )
        values = None if given.lower() == NO_NORMALIZATION else imagenet
    else:
        values = own if given is None else given
    if values is None:
        return None
    values = tuple(float(v) for v in values)
    if channels == 1 and len(values) == 3 and (given is None or isinstance(given, str)):
        values = (sum(values) / 3,)  # a grey model with the source's colour convention
    if len(values) != channels:
        raise ValueError(
            f"{argument} needs {channels} number(s), one per input channel; got {list(values)}"
        )
    divides = argument == "input_std"
    if not all(math.isfinite(v) for v in values) or (divides and min(values) <= 0):
        each = ", each > 0 (it divides the images)" if divides else ""
        raise ValueError(f"{argument} needs finite numbers{each}; got {list(values)}")
    return values
