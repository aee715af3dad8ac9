"""What a target's files are called: a safe file stem for any name (``file_stem``), and what two
names must not share (``name_key``). Plain Python: ``images`` and ``outputs`` both ask it."""

from __future__ import annotations

import hashlib
import re
import unicodedata

NAME_MAX = 255  # bytes in one file name on ext4, XFS, APFS and NTFS
_LONGEST_END = "_level999.png"  # the longest ending a stem is given (K never reaches 1000)
_MARK = "~"  # starts the hash of a changed name; a kept name never has one, so the two never meet
_HASH_CHARS = 12
# Path separators, control characters, lone surrogates, runs of dots, and the mark itself.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f\ud800-\udfff" + _MARK + r"]|\.{2,}")
_LEVEL_END = re.compile(r"_level\d+$")  # would share a file with another target's phase PNG


def file_stem(name: str) -> str:
    """The stem of target ``name``'s files (``<stem>.png``, ``<stem>_level<k>.png``): ``name``
    itself when it is a safe file name (``astronaut``); else ``name`` with path separators,
    control characters and ``..`` replaced by ``_``, leading dots dropped, cut to fit
    ``NAME_MAX`` bytes with its longest ending, and ``~`` and a hash of ``name`` added, so that
    no two names share a file (``a/b`` -> ``a_b~<hash>``, apart from ``a_b``)."""
    stem = _UNSAFE.sub("_", name).lstrip(".")
    budget = NAME_MAX - len(_LONGEST_END)
    if stem == name and stem and len(stem.encode()) <= budget and not _LEVEL_END.search(stem):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    # Cut in bytes, not characters, and never inside a character.
    kept = stem.encode()[: budget - len(_MARK) - _HASH_CHARS].decode("utf-8", "ignore")
    return f"{kept or '_'}{_MARK}{digest}"


def name_key(name: str) -> str:
    """What two target names must not share: the stem of their files as a case-insensitive file
    system that does not normalise Unicode compares them (macOS, Windows), the spaces at the ends
    that Windows drops left out: ``file_stem``, NFC, casefolded, stripped."""
    return unicodedata.normalize("NFC", file_stem(name)).casefold().strip()
