"""Run folders: ``<root>/<name>/version_<n>``, each claimed by one run only.

A version is taken by creating its folder exclusively (``mkdir`` without ``exist_ok``): of two
runs started at the same instant into one root, one gets ``version_0`` and the other, finding it
made, the next. Lightning's ``TensorBoardLogger`` would pick the version itself by listing the
folder, which two such runs see alike; it is given the claimed one instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger

_VERSION = re.compile(r"version_(\d+)")


def folder_name(name: str) -> str:
    """``name`` as one folder name: a model's spec (``pkg/file.py:Net``) has separators."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "model"


def _versions(parent: Path) -> list[int]:
    return [int(m[1]) for p in parent.iterdir() if (m := _VERSION.fullmatch(p.name))]


def claim_run_dir(root: Path | str, name: str) -> Path:
    """A new ``<root>/<folder_name(name)>/version_<n>``, created now: the lowest ``n`` above
    those there, or the next free one when another run creates that one first."""
    parent = Path(root) / folder_name(name)
    parent.mkdir(parents=True, exist_ok=True)
    version = max(_versions(parent), default=-1) + 1
    while True:
        try:
            (parent / f"version_{version}").mkdir()
        except FileExistsError:
            version += 1
            continue
        return parent / f"version_{version}"


def logger_for(run_dir: Path) -> TensorBoardLogger:
    """The TensorBoard logger writing into ``run_dir``: a claimed ``.../<name>/version_<n>``, or a
    folder in one (a sweep's job, a chunk). Without Lightning's ``hp_metric`` placeholder: the
    ``OutputWriter`` logs the run's HParams row with its final means."""
    version = _VERSION.fullmatch(run_dir.name)
    return TensorBoardLogger(
        save_dir=run_dir.parent.parent,
        name=run_dir.parent.name,
        version=int(version[1]) if version else run_dir.name,
        default_hp_metric=False,
    )
