"""What every defence is: what a client does to a layer's features before they leave it, and what
an attacker who knows it compares its own features with.

Features are (N, C, …) or (N, D), one row per target; a defence treats each row on its own, so
a target's observation does not depend on the others of its batch, chunk or process.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import torch
from torch import Tensor

from slp_lightning.errors import ArgumentError
from slp_lightning.maths.losses import feature_distance


class Defence:
    """One way to defend features. ``observe`` turns the features a client computed into what
    leaves it (the attacker's observation), drawing any randomness from the generator it is
    given; ``discrepancy`` is the data term of an attacker who knows the defence (by default the
    distance to the observation, as for one who does not: knowing changes nothing).

    Subclass it in a module of ``slp_lightning/defences/`` and add one line to ``DEFENCES``
    there; ``strength`` is the number after the name on the command line (``noise:0.3``),
    ``OPTIONS`` the keyword options ``defence_args`` may set, with their defaults.
    """

    #: the name on the command line (``--model.defence NAME:STRENGTH``) and in outputs.
    name: ClassVar[str]
    #: what the strength is, for messages and the report (``sigma``, ``bits``, ``keep``).
    strength_name: ClassVar[str | None] = None
    #: the options ``defence_args`` may set, with their defaults.
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, strength: float | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            valid = ", ".join(self.OPTIONS) or "none"
            raise ArgumentError(
                f"defence_args: {self.name} takes no {', '.join(unknown)}; its options: {valid}",
                "FeatureInversion.defence_args",
            )
        self.strength = strength
        self.options = {**self.OPTIONS, **options}
        self.check()

    def check(self) -> None:
        """Refuse a strength or option out of range (``errors.check_range``)."""

    def check_features(self, shape: tuple[int, ...]) -> None:
        """Refuse features of one target's ``shape`` this defence cannot take."""

    @property
    def spec(self) -> str:
        """How the command line names this defence: ``noise:0.3``."""
        return self.name if self.strength is None else f"{self.name}:{self.strength:g}"

    def describe(self) -> dict[str, Any]:
        """The defence as ``results.json`` records it: name, strength, options."""
        return {"defence": self.name, "strength": self.strength, **self.options}

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        """What leaves the client for ``features`` (M, …) of M targets, float32 on the CPU;
        randomness from ``generator`` only (a CPU generator)."""
        raise NotImplementedError

    def calibrate(self, references: Tensor) -> None:
        """Learn what an observation stands for from the attacker's own features of natural
        images (``references`` (M, …), through its own network; never the targets'), where the
        data term needs it; by default nothing."""

    def comparable(self, features: Tensor) -> Tensor:
        """The attacker's own ``features`` (N, …) where the observations are (the same place for
        a defence that keeps their shape): what ``discrepancy`` and the errors compare."""
        return features

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        """The data term per target (N,) of an attacker who knows the defence: how far its
        ``features`` are from what could have given ``observed``. Differentiable in
        ``features``."""
        return feature_distance(self.comparable(features), observed)

    @property
    def defends(self) -> bool:
        """Whether anything is done to the features (``none`` does nothing)."""
        return True


class NoDefence(Defence):
    """The features leave the client as they are."""

    name = "none"

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        return features

    @property
    def defends(self) -> bool:
        return False


def target_seed(seed: int, name: str) -> int:
    """The seed of target ``name``'s observation in a run of ``seed``: the same in every run of
    that seed, whatever the targets beside it, the chunk or the process."""
    return int(
        hashlib.sha256(f"{seed}:{name}".encode("utf-8", "surrogatepass")).hexdigest()[:15], 16
    )


def observe_targets(defence: Defence, features: Tensor, names: list[str], seed: int) -> Tensor:
    """What the client sends for each target: ``defence.observe`` of its row of ``features``
    (N, …), its randomness seeded by ``target_seed``; float32 on the CPU."""
    if not defence.defends:
        return features
    rows = []
    for row, name in zip(features.float().cpu(), names, strict=True):
        generator = torch.Generator().manual_seed(target_seed(seed, name))
        rows.append(defence.observe(row[None], generator))
    return torch.cat(rows).float()


def spatial_dims(features: Tensor) -> tuple[int, ...]:
    """The dimensions of a (M, C, …) tensor over which a channel's statistics are taken."""
    return tuple(range(2, features.dim()))


def row_dims(features: Tensor) -> tuple[int, ...]:
    """Every dimension of a (M, …) tensor but the first: one target's entries."""
    return tuple(range(1, features.dim()))


def statistic_dims(features: Tensor, per_channel: bool) -> tuple[int, ...]:
    """The dimensions of one statistic: a target's (per tensor) or its channel's."""
    return spatial_dims(features) if per_channel else row_dims(features)


def check_channels(defence: Defence, shape: tuple[int, ...]) -> None:
    """Refuse ``per_channel`` for features without positions per channel (``(D,)``, a token)."""
    if defence.options.get("per_channel") and len(shape) < 2:
        raise ArgumentError(
            f"defence {defence.spec}: per_channel needs features (C, …) with positions per channel; "
            f"these are {shape} per target: leave per_channel false",
            "FeatureInversion.defence_args",
        )
