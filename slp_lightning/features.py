"""Feature files: the targets of a run that has features and no images, and how runs write them.

A file holds one feature tensor per target: ``.pt`` (a tensor (N, …), or a dict name → tensor
(…)), ``.npy`` (an array (N, …)) or ``.safetensors`` (name → tensor; needs the ``safetensors``
package). Names come from the dict's keys, else ``feature_0`` … in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SUFFIXES = (".pt", ".pth", ".npy", ".safetensors")
TARGET_FEATURES = "target_features.pt"  # what OutputWriter(save_target_features=True) writes


def _stack(named: dict[str, Tensor], path: Path) -> tuple[list[str], Tensor]:
    shapes = {tuple(t.shape) for t in named.values()}
    if not named or len(shapes) != 1:
        raise ValueError(
            f"{path}: needs one feature tensor per target, all of one shape; found shapes {sorted(shapes)}"
        )
    return list(named), torch.stack([t.float() for t in named.values()])


def read_features(path: str | Path) -> tuple[list[str], Tensor]:
    """The names and features (N, …) float32 of a feature file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r}: no such file")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"features file {path}: expected one of {', '.join(SUFFIXES)}")
    if path.suffix == ".npy":
        values = torch.from_numpy(np.load(path, allow_pickle=False))
    elif path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"reading {path} needs the safetensors package: pip install safetensors"
            ) from None
        return _stack(load_file(str(path)), path)
    else:
        try:
            values = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file gets the same sentence
            raise ValueError(
                f"features file {path} is not a tensor or a dict of tensors saved by torch.save ({error})"
            ) from None
    if isinstance(values, dict) and all(isinstance(v, Tensor) for v in values.values()):
        return _stack({str(k): v for k, v in values.items()}, path)
    if isinstance(values, Tensor) and values.dim() >= 2:
        return [f"feature_{i}" for i in range(len(values))], values.float()
    raise ValueError(f"features file {path}: expected a tensor (N, …) or a dict name → tensor")


def write_features(path: str | Path, names: list[str], features: Tensor) -> Path:
    """Save ``features`` (N, …) as a dict name → tensor that ``read_features`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({name: row.detach().float().cpu().clone() for name, row in zip(names, features)}, path)
    return path
