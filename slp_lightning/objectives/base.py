"""What a feature visualisation maximises: terms of a network's features (a channel, a neuron, a
direction, a class logit, diversity across the batch), weighted and summed, one objective per row.

A ``Term`` is vectorised over the rows that have it: ``value(features, parameters)`` gives, per
row (M,), the activation it measures (larger is more), from those rows' features (M, …) and their
parameters (a channel index, a class, a file). An ``Objective`` holds, for each row, a weighted sum
of terms; its ``loss`` is minus that sum, what ``Z`` minimises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from slp_lightning.errors import ArgumentError


class Term:
    """One kind of term. ``parse`` reads its argument on the command line (``channel:3`` reads
    ``3``); ``check`` refuses an argument the features cannot take, before any step."""

    #: the name on the command line (``--model.objective NAME:ARG``) and in outputs.
    name: ClassVar[str]
    #: what the argument is (``C``, ``K``, ``FILE``), for messages; ``None``: it takes none.
    argument: ClassVar[str | None] = None
    #: whether the argument is a whole number (an index).
    index: ClassVar[bool] = True
    #: whether a row's value depends on the other rows (diversity): ``value`` then gets every row.
    across_rows: ClassVar[bool] = False
    #: what ``value`` means, for results.json.
    meaning: ClassVar[str] = ""

    def parse(self, text: str | None) -> float | str | None:
        """The argument of ``NAME:TEXT`` (``None``: ``NAME`` alone)."""
        if self.argument is None:
            if text is not None:
                raise ArgumentError(
                    f"objective {self.name} takes no argument; give {self.name}",
                    "FeatureInversion.objective",
                )
            return None
        if text is None:
            raise ArgumentError(
                f"objective {self.name} needs its {self.argument}: {self.name}:{self.argument}",
                "FeatureInversion.objective",
            )
        try:
            value = float(text)
        except ValueError:
            raise ArgumentError(
                f"objective {self.name}:{text}: {text!r} is no number; give {self.name}:{self.argument}",
                "FeatureInversion.objective",
            ) from None
        if self.index and not value.is_integer():
            raise ArgumentError(
                f"objective {self.name}:{text}: {self.argument} is an index, a whole number",
                "FeatureInversion.objective",
            )
        return int(value) if self.index else value

    def check(self, parameter: float | str | None, shape: tuple[int, ...]) -> None:
        """Refuse ``parameter`` for features of one row's ``shape``."""

    def value(self, features: Tensor, parameters: list) -> Tensor:
        """The activation per row (M,), from features (M, …) and one parameter per row."""
        raise NotImplementedError


@dataclass(frozen=True)
class Part:
    """A weighted term of a row's objective: ``weight · term(parameter)``."""

    term: str
    parameter: float | str | None = None
    weight: float = 1.0

    def spec(self) -> str:
        name = self.term if self.parameter is None else f"{self.term}:{_number(self.parameter)}"
        return name if self.weight == 1 else f"{_number(self.weight)}*{name}"


def _number(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


class Objective:
    """Per row a weighted sum of terms (``rows``: a list of ``Part`` lists, one per row, each
    checked against features of one row's ``shape``), its value vectorised per kind of term."""

    def __init__(
        self, rows: list[list[Part]], terms: dict[str, Term], shape: tuple[int, ...]
    ) -> None:
        self.rows = rows
        self.terms = terms
        self.shape = shape
        groups: dict[tuple[str, float], list[tuple[int, float | str | None]]] = {}
        for row, parts in enumerate(rows):
            for part in parts:
                terms[part.term].check(part.parameter, shape)
                groups.setdefault((part.term, part.weight), []).append((row, part.parameter))
        self._groups = [
            (terms[name], weight, [row for row, _ in members], [p for _, p in members])
            for (name, weight), members in groups.items()
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, rows: Tensor) -> Objective:
        """The objective of ``rows`` (bool (N,)) alone."""
        kept = [parts for parts, keep in zip(self.rows, rows.tolist()) if keep]
        return Objective(kept, self.terms, self.shape)

    def spec(self, row: int) -> str:
        """Row ``row``'s objective as the command line names it: ``channel:3 + 0.5*diversity``."""
        return " + ".join(part.spec() for part in self.rows[row])

    def classes(self, row: int) -> list[int]:
        """The classes row ``row`` maximises (its ``class`` terms), for the transfer score."""
        return [int(part.parameter) for part in self.rows[row] if part.term == "class"]

    def activation(self, features: Tensor, across_rows: bool = True) -> Tensor:
        """The objective's value per row (N,): the weighted sum of its terms (larger is more);
        without the terms across rows (diversity) unless ``across_rows``."""
        total = features.new_zeros(len(features), dtype=torch.float32)
        for term, weight, rows, parameters in self._groups:
            if term.across_rows and not across_rows:
                continue
            index = torch.tensor(rows, device=features.device)
            if term.across_rows:
                values = term.value(features, [None] * len(features))[index]
            else:
                values = term.value(features[index], parameters)
            total = total.index_add(0, index, weight * values.float())
        return total

    def loss(self, features: Tensor) -> Tensor:
        """What is minimised per row: minus the activation."""
        return -self.activation(features)
