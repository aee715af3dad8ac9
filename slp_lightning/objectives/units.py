"""Terms of single units: a channel's mean, a neuron (a channel at the centre), a direction in
channel space, a class logit (Olah et al., "Feature Visualization", Distill 2017; Lucid's
``objectives``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from slp_lightning.errors import ArgumentError
from slp_lightning.objectives.base import Term


def _channels(shape: tuple[int, ...], name: str) -> int:
    if len(shape) < 1:
        raise ArgumentError(
            f"objective {name} needs features with channels; these are {shape}",
            "FeatureInversion.objective",
        )
    return shape[0]


class Channel(Term):
    """The mean of channel C over its positions (features (M, C, …) or (M, C))."""

    name, argument = "channel", "C"
    meaning = "the channel's mean activation"

    def check(self, parameter: float | str | None, shape: tuple[int, ...]) -> None:
        channels = _channels(shape, self.name)
        if not 0 <= int(parameter) < channels:
            raise ArgumentError(
                f"objective {self.name}:{parameter}: the layer has {channels} channels (0 to {channels - 1})",
                "FeatureInversion.objective",
            )

    def value(self, features: Tensor, parameters: list) -> Tensor:
        index = torch.tensor(parameters, device=features.device)
        rows = torch.arange(len(features), device=features.device)
        return features[rows, index].flatten(1).mean(dim=1)


class Neuron(Channel):
    """Channel C at the centre position (features (M, C, H, W))."""

    name = "neuron"
    meaning = "the channel's activation at the centre position"

    def check(self, parameter: float | str | None, shape: tuple[int, ...]) -> None:
        if len(shape) != 3:
            raise ArgumentError(
                f"objective neuron needs features (C, H, W) per image; these are {shape}: use channel",
                "FeatureInversion.objective",
            )
        super().check(parameter, shape)

    def value(self, features: Tensor, parameters: list) -> Tensor:
        centre = features[..., features.shape[-2] // 2, features.shape[-1] // 2]
        index = torch.tensor(parameters, device=features.device)
        return centre[torch.arange(len(features), device=features.device), index]


class Class(Term):
    """Logit K of the model's output (features (M, classes): the layer must be its logits)."""

    name, argument = "class", "K"
    meaning = "the class's logit"

    def check(self, parameter: float | str | None, shape: tuple[int, ...]) -> None:
        if len(shape) != 1:
            raise ArgumentError(
                f"objective class:{parameter} needs the model's logits, (classes,) per image; the layer gives "
                f"{shape}: read the model at its output (layer null, or the module path of its last layer, "
                f"'classifier' for torchvision's MobileNetV2)",
                "FeatureInversion.objective",
            )
        if not 0 <= int(parameter) < shape[0]:
            raise ArgumentError(
                f"objective class:{parameter}: the output has {shape[0]} classes (0 to {shape[0] - 1})",
                "FeatureInversion.objective",
            )

    def value(self, features: Tensor, parameters: list) -> Tensor:
        index = torch.tensor(parameters, device=features.device)
        return features[torch.arange(len(features), device=features.device), index]


class Direction(Term):
    """A direction v in channel space (a file holding a vector (C,): ``torch.save`` or ``.npy``):
    at each position ``(a · v) · max(cos(a, v), 0)^p`` (Lucid's ``direction_neuron_cossim``;
    ``p`` is ``objective_args.cossim_power``, default 0: the plain dot product), averaged."""

    name, argument, index = "direction", "FILE", False
    meaning = "the mean over positions of the dot product with the direction (times cos^p)"

    def __init__(self, cossim_power: float = 0.0) -> None:
        self.cossim_power = cossim_power
        self._vectors: dict[str, Tensor] = {}

    def parse(self, text: str | None) -> str:
        if not text:
            raise ArgumentError(
                "objective direction needs a file: direction:FILE", "FeatureInversion.objective"
            )
        return text

    def vector(self, path: str) -> Tensor:
        if path not in self._vectors:
            file = Path(path).expanduser()
            if not file.is_file():
                raise ArgumentError(
                    f"objective direction:{path}: no such file", "FeatureInversion.objective"
                )
            if file.suffix == ".npy":
                import numpy as np

                loaded = torch.from_numpy(np.load(file, allow_pickle=False))
            else:
                loaded = torch.load(file, map_location="cpu", weights_only=True)
            if not torch.is_tensor(loaded) or loaded.dim() != 1 or not torch.isfinite(loaded).all():
                raise ArgumentError(
                    f"objective direction:{path}: the file must hold one finite vector (C,)",
                    "FeatureInversion.objective",
                )
            self._vectors[path] = loaded.float()
        return self._vectors[path]

    def check(self, parameter: float | str | None, shape: tuple[int, ...]) -> None:
        channels = _channels(shape, self.name)
        if len(self.vector(str(parameter))) != channels:
            raise ArgumentError(
                f"objective direction:{parameter}: the vector has {len(self.vector(str(parameter)))} entries, the "
                f"layer {channels} channels",
                "FeatureInversion.objective",
            )

    def value(self, features: Tensor, parameters: list) -> Tensor:
        v = torch.stack([self.vector(p) for p in parameters]).to(features)  # (M, C)
        a = features.flatten(2) if features.dim() > 2 else features[..., None]  # (M, C, P)
        dot = torch.einsum("mcp,mc->mp", a, v)
        if self.cossim_power:
            cosine = dot / (a.norm(dim=1) * v.norm(dim=1, keepdim=True)).clamp(min=1e-8)
            dot = dot * cosine.clamp(min=0) ** self.cossim_power
        return dot.mean(dim=1)
