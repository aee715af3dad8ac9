"""Feature files: the targets of a run that has features and no images, and how runs write them.

A file holds one feature tensor per target: ``.pt`` (a tensor (N, …), or a dict name → tensor
(…)), ``.npy`` (an array (N, …)) or ``.safetensors`` (name → tensor; needs the ``safetensors``
package). Names come from the dict's keys, else ``feature_0`` … in order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SUFFIXES = (".pt", ".pth", ".npy", ".safetensors")
TARGET_FEATURES = "target_features.pt"  # what OutputWriter(save_target_features=True) writes


class FeatureRows:
    """The features of a file, one row per target, read when a slice of them is asked for: a
    chunked run holds its chunk's rows, not the file's (``.npy`` and ``.pt`` are memory-mapped,
    ``.safetensors`` read tensor by tensor)."""

    def __init__(self, count: int, shape: tuple[int, ...], read: Callable[[range], Tensor]) -> None:
        self.shape = (count, *shape)
        self._read = read

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> Tensor:
        """Rows ``rows`` (a slice), as float32 (N, …) in memory."""
        return self._read(range(*rows.indices(len(self)))).float()


def _named(
    shapes: dict[str, tuple[int, ...]], get: Callable[[str], Tensor], path: Path
) -> tuple[list[str], FeatureRows]:
    """Names and rows of a file of one tensor per name."""
    if not shapes or len(set(shapes.values())) != 1:
        found = sorted(set(shapes.values()))
        raise ValueError(
            f"{path}: needs one feature tensor per target, all of one shape; found shapes {found}"
        )
    names = list(shapes)
    rows = FeatureRows(
        len(names), next(iter(shapes.values())), lambda r: torch.stack([get(names[i]) for i in r])
    )
    return names, rows


def _slice(rows: range) -> slice:
    return slice(rows.start, rows.stop, rows.step)


def _load_pt(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        # Files saved in torch's legacy (non-zip) format cannot be mapped: read them whole.
        return torch.load(path, map_location="cpu", weights_only=True)


def read_features(path: str | Path) -> tuple[list[str], FeatureRows]:
    """The names and rows (N, …) of a feature file (only its layout is read now)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r}: no such file")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"features file {path}: expected one of {', '.join(SUFFIXES)}")
    if path.suffix == ".npy":
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        values = FeatureRows(
            len(array), array.shape[1:], lambda r: torch.from_numpy(np.array(array[_slice(r)]))
        )
    elif path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"reading {path} needs the safetensors package: pip install safetensors"
            ) from None
        handle = safe_open(str(path), framework="pt")
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
        return _named(shapes, handle.get_tensor, path)
    else:
        try:
            values = _load_pt(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file gets the same sentence
            raise ValueError(
                f"features file {path} is not a tensor or a dict of tensors saved by torch.save ({error})"
            ) from None
    if isinstance(values, dict) and all(isinstance(v, Tensor) for v in values.values()):
        named = {str(k): v for k, v in values.items()}
        return _named({k: tuple(v.shape) for k, v in named.items()}, named.__getitem__, path)
    if isinstance(values, Tensor) and values.dim() >= 2:
        values = FeatureRows(
            len(values), tuple(values.shape[1:]), lambda r, tensor=values: tensor[_slice(r)]
        )
    if isinstance(values, FeatureRows) and len(values.shape) >= 2:
        return [f"feature_{i}" for i in range(len(values))], values
    raise ValueError(f"features file {path}: expected a tensor (N, …) or a dict name → tensor")


def write_features(path: str | Path, names: list[str], features: Tensor) -> Path:
    """Save ``features`` (N, …) as a dict name → tensor that ``read_features`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {name: row.detach().float().cpu().clone() for name, row in zip(names, features)}, path
    )
    return path
