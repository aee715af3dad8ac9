"""Feature files: the targets of a run that has features and no images, and how runs write them.

A file holds one feature tensor per target: ``.pt`` (a tensor (N, …), or a dict name → tensor
(…)), ``.npy`` (an array (N, …)) or ``.safetensors`` (name → tensor; needs the ``safetensors``
package). Names come from the dict's keys, else ``feature_0`` … in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from slp_lightning.data.file_names import name_key

SUFFIXES = (".pt", ".pth", ".npy", ".safetensors")
TARGET_FEATURES = "target_features.pt"  # what OutputWriter(save_target_features=True) writes
SCAN_ELEMENTS = 2**24  # values read at a time by the check for NaN and infinity (64 MB)


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
    if len(set(shapes.values())) > 1:
        found = sorted(set(shapes.values()))
        raise ValueError(
            f"{path}: needs one feature tensor per target, all of one shape; found shapes {found}"
        )
    names = list(shapes)
    rows = FeatureRows(
        len(names),
        next(iter(shapes.values()), ()),
        lambda r: torch.stack([get(names[i]) for i in r]),
    )
    return names, rows


def _check_distinct(keys: list[object], path: Path) -> None:
    """Refuse keys that would be one target's name, or share its files (``file_names.name_key``):
    ``1`` and ``'1'``, ``a`` and ``'a '``, ``A`` and ``a``."""
    first: dict[str, object] = {}
    for key in keys:
        other = first.setdefault(name_key(str(key)), key)
        if other is not key:
            raise ValueError(
                f"features file {path}: the keys {other!r} and {key!r} would name one target (and "
                f"share its files); accepted: keys that stay distinct as names, whatever their case "
                f"or the spaces at their ends"
            )


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


def _load_npy(path: Path) -> FeatureRows:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # empty, cut short, pickled, not numpy's
        raise ValueError(
            f"features file {path} is not an array saved by numpy.save ({error}); accepted: an "
            f"array (N, …) of one row per target"
        ) from None
    if array.ndim < 2:
        raise ValueError(
            f"features file {path} holds an array of shape {array.shape}; accepted: an array "
            f"(N, …) of one row per target, at least 2-d"
        )
    return FeatureRows(
        len(array), array.shape[1:], lambda r: torch.from_numpy(np.array(array[_slice(r)]))
    )


def _load_safetensors(path: Path) -> tuple[list[str], FeatureRows]:
    try:
        from safetensors import SafetensorError, safe_open
    except ModuleNotFoundError:
        raise ValueError(
            f"features file {path} is a .safetensors file, which needs the safetensors package "
            f"(pip install safetensors); accepted without it: {', '.join(SUFFIXES[:-1])}"
        ) from None
    try:
        handle = safe_open(str(path), framework="pt")
    except SafetensorError as error:
        raise ValueError(
            f"features file {path} is not a safetensors file ({error}); accepted: a dict "
            f"name → tensor saved by safetensors.torch.save_file"
        ) from None
    shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    _check_distinct(list(shapes), path)
    return _named(shapes, handle.get_tensor, path)


def _layout(path: Path) -> tuple[list[str], FeatureRows]:
    """The names and rows of a feature file of any suffix, none of its values read."""
    if path.suffix == ".npy":
        values: object = _load_npy(path)
    elif path.suffix == ".safetensors":
        return _load_safetensors(path)
    else:
        try:
            values = _load_pt(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file gets the same sentence
            raise ValueError(
                f"features file {path} is not a tensor or a dict of tensors saved by torch.save ({error})"
            ) from None
    if isinstance(values, dict) and all(isinstance(v, Tensor) for v in values.values()):
        _check_distinct(list(values), path)
        named = {str(k): v for k, v in values.items()}
        return _named({k: tuple(v.shape) for k, v in named.items()}, named.__getitem__, path)
    if isinstance(values, Tensor) and values.dim() >= 2:
        values = FeatureRows(
            len(values), tuple(values.shape[1:]), lambda r, tensor=values: tensor[_slice(r)]
        )
    if isinstance(values, FeatureRows):
        return [f"feature_{i}" for i in range(len(values))], values
    raise ValueError(f"features file {path}: expected a tensor (N, …) or a dict name → tensor")


def _first_non_finite(rows: FeatureRows) -> int | None:
    """The first row with a NaN or an infinity (after the cast to float32), read a block of rows
    at a time so that a large file is never in memory whole."""
    block = max(1, SCAN_ELEMENTS // max(1, math.prod(rows.shape[1:])))
    for start in range(0, len(rows), block):
        finite = torch.isfinite(rows[start : start + block].flatten(1)).all(dim=1)
        if not finite.all():
            return start + int(finite.logical_not().nonzero()[0])
    return None


def read_features(path: str | Path) -> tuple[list[str], FeatureRows]:
    """The names and rows (N, …) of a feature file: its layout, and every value once, a block at a
    time, to refuse a file without rows or with a NaN or infinity before the first step."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r}: no such file")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"features file {path}: expected one of {', '.join(SUFFIXES)}")
    names, rows = _layout(path)
    if not names:
        raise ValueError(
            f"features file {path} holds no targets (0 rows); accepted: one row per target, at "
            f"least one"
        )
    bad = _first_non_finite(rows)
    if bad is not None:
        raise ValueError(
            f"features file {path}: target {names[bad]!r} (row {bad}) holds NaN or infinite "
            f"values; accepted: finite numbers only"
        )
    return names, rows


def write_features(path: str | Path, names: list[str], features: Tensor) -> Path:
    """Save ``features`` (N, …) as a dict name → tensor that ``read_features`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {name: row.detach().float().cpu().clone() for name, row in zip(names, features)}, path
    )
    return path
