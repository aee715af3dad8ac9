"""``--config``: a path, or the name of a config shipped with the package, from any directory."""

from __future__ import annotations

import re
from pathlib import Path

SUFFIX = ".yaml"


def shipped_dir() -> Path:
    """Where the shipped configs are: ``slp_lightning/configs/`` once installed with pip, else
    the top-level ``configs/`` of the source tree (a checkout or an editable install)."""
    package = Path(__file__).resolve().parents[1]  # slp_lightning/, above cli/
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


def shipped_configs() -> list[str]:
    """The names of the shipped configs: ``alexnet_conv5``, ``paper/table2_sift``, …"""
    folder = shipped_dir()
    return sorted(
        p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob(f"*{SUFFIX}")
    )


def find_config(value: str) -> str:
    """``value`` when it is an existing path or an inline config; else the shipped config it
    names (``alexnet_conv5``, ``alexnet_conv5.yaml``, ``configs/paper/table2_sift.yaml``)."""
    if Path(value).expanduser().exists() or not re.fullmatch(r"[\w./-]+", value):
        return value
    name = value.removeprefix("configs/").removesuffix(SUFFIX)
    if name in shipped_configs():
        return str(shipped_dir() / f"{name}{SUFFIX}")
    raise FileNotFoundError(
        f"--config {value!r}: no such file, and no shipped config of that name; shipped configs: "
        f"{', '.join(shipped_configs())}"
    )


def with_shipped_configs(args: list[str]) -> list[str]:
    """``args`` with the value of each ``--config``/``-c`` resolved by ``find_config``."""
    resolved = list(args)
    for i, arg in enumerate(resolved):
        if arg in ("--config", "-c") and i + 1 < len(resolved):
            resolved[i + 1] = find_config(resolved[i + 1])
        elif arg.startswith("--config="):
            resolved[i] = f"--config={find_config(arg.removeprefix('--config='))}"
    return resolved
