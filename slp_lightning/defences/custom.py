"""A defence of the user's own: any callable from features to what leaves the client (a function,
an ``nn.Module``), from Python or named ``PKG.MODULE:CALLABLE`` on the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from slp_lightning.defences.base import Defence
from slp_lightning.maths.losses import feature_distance


class CallableDefence(Defence):
    """``y = transform(f)`` for features (M, …) of M targets; a random transform draws from torch's
    global generator, which is seeded per target (the same observation in every run of a seed).

    An attacker who knows it applies it to its own features and compares, ``‖transform(f) − y‖``
    (a random transform is drawn afresh at every step: the expectation over it, in effect), so a
    transform that changes the features' shape (a pooling, a projection) can be attacked: its
    errors are measured where the observations are. One who does not know it compares its
    features with ``y`` as they are, which needs the shape kept. The transform must be
    differentiable for the aware attack."""

    name = "custom"

    def __init__(self, transform: Callable[[Tensor], Tensor], spec: str | None = None) -> None:
        super().__init__()
        if not callable(transform):
            raise ValueError(
                f"defence {spec or transform!r} is a {type(transform).__name__}, not a callable"
            )
        self.transform = transform
        self._spec = spec or getattr(transform, "__qualname__", type(transform).__name__)
        if isinstance(transform, nn.Module):
            transform.requires_grad_(False)

    @property
    def spec(self) -> str:
        return self._spec

    def describe(self) -> dict[str, Any]:
        return {"defence": self._spec, "strength": None}

    def observe(self, features: Tensor, generator: torch.Generator) -> Tensor:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
            observed = self.transform(features)
        if not torch.is_tensor(observed):
            raise ValueError(
                f"defence {self._spec} returned a {type(observed).__name__}, not a tensor of features"
            )
        return observed.detach().float()

    def comparable(self, features: Tensor) -> Tensor:
        return self.transform(features)

    def discrepancy(self, features: Tensor, observed: Tensor) -> Tensor:
        return feature_distance(self.comparable(features).float(), observed)
