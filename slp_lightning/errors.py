"""Errors about arguments: named as Python names them, given their flags by the command line."""

from __future__ import annotations

import re
from collections.abc import Callable


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
