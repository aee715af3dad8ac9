"""Objectives of a feature visualisation behind one registry: ``build_objective`` turns specs
(``channel:3``, ``class:309 + 0.5*diversity``, one per row or one for all) into an ``Objective``.

================ ==========================================================================
``inversion``    no visualisation: the features of the targets are inverted (the default)
``channel:C``    the mean of channel C at the layer
``neuron:C``     channel C at the centre position
``direction:F``  a vector in channel space from file F (dot product × cosine^p)
``class:K``      logit K of the model's output (the layer must be the logits)
``diversity:W``  minus the style similarity across the batch, weight W (``W*diversity`` too)
================ ==========================================================================

Terms add up with ``+`` and take a weight before ``*``. Adding a term is a ``Term`` subclass in a
module here and a line in ``TERMS``.
"""

from __future__ import annotations

import re
from typing import Any

from slp_lightning.errors import ArgumentError
from slp_lightning.objectives.base import Objective, Part, Term
from slp_lightning.objectives.diversity import Diversity
from slp_lightning.objectives.units import Channel, Class, Direction, Neuron

INVERSION = "inversion"
TERMS: dict[str, type[Term]] = {
    term.name: term for term in (Channel, Neuron, Direction, Class, Diversity)
}
ObjectiveSpec = str | list[str] | None


def parse(spec: str, terms: dict[str, Term]) -> list[Part]:
    """The parts of one row's objective, ``channel:3 + 0.5*diversity``."""
    parts = []
    for piece in spec.split("+"):
        piece = piece.strip()
        weight, star, rest = piece.partition("*")
        if not star:
            weight, rest = "1", piece
        try:
            scale = float(weight)
        except ValueError:
            raise ArgumentError(
                f"objective {spec!r}: {weight!r} is no weight; give W*TERM",
                "FeatureInversion.objective",
            ) from None
        name, colon, argument = rest.strip().partition(":")
        if name not in terms:
            valid = ", ".join(
                f"{n}:{t.argument}" if t.argument else f"{n}:W" for n, t in terms.items()
            )
            raise ArgumentError(
                f"unknown objective {rest.strip()!r}; valid: {INVERSION}, {valid}",
                "FeatureInversion.objective",
            )
        term = terms[name]
        if isinstance(term, Diversity) and colon:  # diversity:W is its weight
            parts.append(Part(name, None, scale * Term.parse(_Weight(), argument)))
            continue
        parts.append(Part(name, term.parse(argument if colon else None), scale))
    return parts


class _Weight(Term):
    name, argument, index = "diversity", "W", False


def build_objective(
    spec: ObjectiveSpec,
    shape: tuple[int, ...],
    rows: int | None = None,
    options: dict[str, Any] | None = None,
) -> Objective | None:
    """The objective of ``spec``: ``None`` for ``inversion`` (or ``None``); a spec for every row,
    or a list of specs, one per row (of ``rows`` when given, which the list must match), each
    checked against features of one row's ``shape``; ``options`` go to the terms
    (``cossim_power`` of ``direction``)."""
    if spec is None or spec == INVERSION:
        return None
    options = dict(options or {})
    terms = {name: kind(**options) if kind is Direction else kind() for name, kind in TERMS.items()}
    unknown = set(options) - {"cossim_power"}
    if unknown:
        raise ArgumentError(
            f"objective_args: unknown {sorted(unknown)}; valid: cossim_power",
            "FeatureInversion.objective_args",
        )
    specs = [spec] * (rows or 1) if isinstance(spec, str) else list(spec)
    if not specs or INVERSION in specs:
        raise ArgumentError(
            "a list of objectives holds terms to maximise, not inversion",
            "FeatureInversion.objective",
        )
    if rows is not None and len(specs) != rows:
        raise ArgumentError(
            f"{len(specs)} objectives for {rows} rows", "FeatureInversion.objective"
        )
    return Objective([parse(s, terms) for s in specs], terms, shape)


def row_name(spec: str) -> str:
    """A row's name from its objective: ``channel:3`` -> ``channel_3``."""
    return re.sub(r"[^\w.-]+", "_", spec.replace("*", "x")).strip("_") or "objective"


__all__ = [
    "INVERSION",
    "TERMS",
    "Objective",
    "ObjectiveSpec",
    "Part",
    "Term",
    "build_objective",
    "row_name",
]
