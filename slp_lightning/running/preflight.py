"""Checks made before the first step of what a run needs around it, each refused in one sentence
before any folder is made (the data's own checks are where it is read: ``data``, ``features``,
``networks.weights``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from slp_lightning.errors import ArgumentError

ROOT_ARGUMENT = "Trainer.default_root_dir"
ACCEPTED_ROOT = "accepted: a folder this user can write in, or a path where one can be made"


def check_output_root(root: str | Path) -> None:
    """Refuse an output root (``default_root_dir``) the run could not make its folders in: a file,
    a path under a file, or a place where no folder can be made (read-only, ``/proc``).

    The nearest existing folder on the path is probed by making and removing one empty folder in
    it: file modes, ACLs, read-only mounts and root's rights all answer as they will for the run.
    Nothing is left behind; a root still to be made is not made.
    """
    path = Path(root).expanduser()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be made: {existing} is a file"
        raise ArgumentError(f"default_root_dir {path} {where}; {ACCEPTED_ROOT}", ROOT_ARGUMENT)
    try:
        probe = tempfile.mkdtemp(prefix=".slp_lightning_probe_", dir=existing)
    except OSError as error:
        raise ArgumentError(
            f"default_root_dir {path} cannot be written: making a folder in {existing} fails "
            f"({error.strerror}); {ACCEPTED_ROOT}",
            ROOT_ARGUMENT,
        ) from None
    os.rmdir(probe)
