"""Errors about arguments: named as Python names them, given their flags by the command line."""

from __future__ import annotations

import math
import re
from collections.abc import Callable


class PeerLostError(RuntimeError):
    """Another process of the run stopped answering: it crashed or was killed."""


class ArgumentError(ValueError):
    """A bad argument value or combination. The message names each argument as a Python caller
    passes it (``image_size``); ``arguments`` qualifies each by the class that takes it
    (``FeatureInversion.image_size``), so that the command line can name its flag instead
    (``--model.image_size``, ``named``)."""

    def __init__(self, message: str, *arguments: str) -> None:
        super().__init__(message)
        self.arguments = arguments

    def named(self, name: Callable[[str], str]) -> str:
        """The message with each argument's name replaced by ``name(qualified name)``."""
        message = str(self)
        for argument in self.arguments:
            plain = re.escape(argument.rsplit(".", 1)[-1])
            # Not inside a longer name, a path or a file name (``/data/features.npy``).
            message = re.sub(
                rf"(?<![\w.`/\\-]){plain}(?![\w`/\\]|\.\w)", lambda _: name(argument), message
            )
        return message


def check_range(
    value: float | None,
    argument: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    meaning: str = "",
) -> None:
    """Refuse ``value`` outside its range, as an ``ArgumentError`` naming ``argument`` (qualified:
    ``FeatureInversion.image_size``): ``low`` and ``high`` bound it (excluded when ``*_open``),
    ``integer`` asks for a whole number, NaN is never in range, ``None`` always is (an absent
    setting: its default). ``meaning`` says what the setting is, before the range."""
    if value is None:
        return
    name = argument.rsplit(".", 1)[-1]
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    if low is not None and high is not None:
        bounds = [f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"]
    kind = "an integer" if integer else "a number"
    wrong_kind = isinstance(value, bool) or not isinstance(value, int | float)
    wrong_kind = wrong_kind or (integer and not isinstance(value, int))
    outside = wrong_kind or not math.isfinite(value)  # NaN and infinity are no setting
    if not outside and low is not None:
        outside = value <= low if low_open else value < low
    if not outside and high is not None:
        outside = value >= high if high_open else value > high
    if outside:
        raise ArgumentError(
            f"{name} {f'({meaning}) ' if meaning else ''}must be {kind} {' and '.join(bounds)}; "
            f"got {value!r}",
            argument,
        )
