"""Defences of the features a client sends, behind one registry: ``build_defence`` turns a name
(``noise:0.3``), a ``Defence``, any callable or ``PKG.MODULE:CALLABLE`` into one.

=============== ================================================================================
``none``        the features as they are (the default)
``noise:σ``     Gaussian noise of σ times the features' std (``per_channel``: each channel's)
``laplace:b``   Laplace noise of scale b times the features' std (Titcombe et al.)
``quantise:B``  B bits per value, uniform between the target's (or channel's) extremes, sent too
``topk:K``      the share K of the features largest in magnitude, zeros for the rest
``dropout:P``   each feature dropped with probability P, the rest scaled by 1/(1 − P) (``rescale``)
any callable    a function or ``nn.Module`` from features to what is sent (``defences.custom``)
=============== ================================================================================

Adding one is a module here with a ``Defence`` subclass and a line in ``DEFENCES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from slp_lightning.defences.base import Defence, NoDefence, observe_targets, target_seed
from slp_lightning.defences.custom import CallableDefence
from slp_lightning.defences.noise import GaussianNoise, LaplaceNoise
from slp_lightning.defences.quantise import Quantise
from slp_lightning.defences.sparsify import Dropout, TopK
from slp_lightning.errors import ArgumentError

DEFENCES: dict[str, type[Defence]] = {
    defence.name: defence
    for defence in (NoDefence, GaussianNoise, LaplaceNoise, Quantise, TopK, Dropout)
}
DefenceSpec = str | Defence | Callable[[Tensor], Tensor] | None


def _strength(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentError(
            f"defence {spec!r}: {text!r} is no number; give NAME:NUMBER, e.g. noise:0.3",
            "FeatureInversion.defence",
        ) from None
    return int(value) if value.is_integer() and "." not in text else value


def build_defence(defence: DefenceSpec, options: dict[str, Any] | None = None) -> Defence:
    """The defence ``defence`` names: ``None`` or ``none`` (no defence), ``NAME:STRENGTH`` of
    ``DEFENCES`` (``options``, ``defence_args`` on the command line, its keyword options), a
    ``Defence``, a callable from features to observed features (a function or ``nn.Module``), or
    ``PKG.MODULE:CALLABLE`` (a file path for the module works too) naming one; a class named so
    is called with ``options``."""
    options = dict(options or {})
    if defence is None:
        defence = "none"
    if isinstance(defence, Defence):
        if options:
            raise ArgumentError(
                "defence_args are for a defence given by name", "FeatureInversion.defence_args"
            )
        return defence
    if not isinstance(defence, str):
        return CallableDefence(defence)
    name, _, strength = defence.partition(":")
    if name in DEFENCES:
        kind = DEFENCES[name]
        if kind.strength_name is not None and not strength:
            raise ArgumentError(
                f"defence {name} needs its {kind.strength_name}: {name}:NUMBER",
                "FeatureInversion.defence",
            )
        if kind.strength_name is None and strength:
            raise ArgumentError(
                f"defence {name} takes no strength; give {name}", "FeatureInversion.defence"
            )
        return kind(_strength(strength, defence) if strength else None, **options)
    if strength and not strength.replace(".", "", 1).isdigit():
        from slp_lightning.networks.sources import (
            import_object,
        )  # a user's code, imported on request

        target = import_object(defence, what="defence")
        if isinstance(target, type):
            target = target(**options)
        elif options:
            raise ArgumentError(
                f"defence_args are for a class; {defence} is a {type(target).__name__}",
                "FeatureInversion.defence_args",
            )
        if not callable(target):
            raise ArgumentError(
                f"defence {defence!r} is a {type(target).__name__}, not a callable from features to features",
                "FeatureInversion.defence",
            )
        return CallableDefence(target, spec=defence)
    valid = [
        f"{n}:{k.strength_name.upper()}" if k.strength_name else n for n, k in DEFENCES.items()
    ]
    raise ArgumentError(
        f"unknown defence {defence!r}; valid: {', '.join(valid)}, or a callable PKG.MODULE:CALLABLE",
        "FeatureInversion.defence",
    )


__all__ = [
    "DEFENCES", "CallableDefence", "Defence", "DefenceSpec", "Dropout", "GaussianNoise", "LaplaceNoise",
    "NoDefence", "Quantise", "TopK", "build_defence", "observe_targets", "target_seed",
]  # fmt: skip
