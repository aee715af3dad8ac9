"""State dicts: a weights file read (a state dict or a Lightning checkpoint), its keys renamed by
``weights_map``, and the tensors a cut network needs checked (present, of the right shape,
finite) and copied into it; the rest of a file is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

# BatchNorm's step counter: eval mode never reads it and older files (torchvision's own early
# checkpoints among them) lack it, so it is loaded when present and never required.
_OPTIONAL = ".num_batches_tracked"
_SHOWN = 5  # keys quoted in an error message


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (", …" if len(keys) > _SHOWN else "")


def map_keys(state: Mapping[str, Tensor], weights_map: Mapping[str, str]) -> dict[str, Tensor]:
    """``state`` with every key rewritten by each ``regex -> replacement`` of ``weights_map``, in
    order (``re.sub``); ``{"^module\\.": ""}`` drops DataParallel's prefix."""
    rules = []
    for pattern, replacement in weights_map.items():
        try:
            rules.append((re.compile(pattern), replacement))
        except re.error as error:
            raise ValueError(
                f"--model.weights_map: {pattern!r} is not a regular expression ({error})"
            ) from None
    mapped: dict[str, Tensor] = {}
    for key, tensor in state.items():
        new = key
        for pattern, replacement in rules:
            new = pattern.sub(replacement, new)
        if new in mapped:
            raise ValueError(
                f"--model.weights_map renames two keys to {new!r}, one of them {key!r}"
            )
        mapped[new] = tensor
    return mapped


def read_state_dict(path: Path, weights_map: Mapping[str, str] | None = None) -> dict[str, Tensor]:
    """The state dict saved in ``path`` (of a Lightning checkpoint: its ``state_dict``), with its
    keys renamed by ``weights_map`` (see :func:`map_keys`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a foreign file fails in many ways (EOFError, …)
        raise ValueError(
            f"cannot read weights file {path}: torch.load(weights_only=True) fails on it "
            f"({type(error).__name__}); expected a state dict saved with "
            f"torch.save(model.state_dict(), path) or a Lightning checkpoint, not a text file, a "
            f"pickled model or another format"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning checkpoint
    if not isinstance(state, dict):
        raise ValueError(
            f"weights file {path} holds a {type(state).__name__}, not a state dict (a dict of "
            f"tensors); save one with torch.save(model.state_dict(), path)"
        )
    others = [str(k) for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if others:
        raise ValueError(
            f"weights file {path} holds a dict that is not a state dict: {_some(others)} are not "
            f"named tensors (if the weights sit under one of those keys, save that entry alone)"
        )
    return map_keys(state, weights_map or {})


def load_needed(model: nn.Module, body: nn.Module, state: Mapping[str, Tensor], source: str) -> int:
    """Copy from ``state`` into ``model`` every tensor that ``body``, a part of ``model`` sharing
    its modules, holds; ``state``'s keys are ``model``'s and the rest of it is ignored.

    Returns how many tensors were copied. Raises ValueError naming the missing keys, the first
    key whose shape differs, or the keys with a NaN or infinity; ``source`` names the weights in
    the message.
    """
    in_body = {id(t) for t in body.state_dict(keep_vars=True).values()}
    needed = {k: t for k, t in model.state_dict(keep_vars=True).items() if id(t) in in_body}
    missing = [k for k in needed if k not in state and not k.endswith(_OPTIONAL)]
    if missing:
        raise ValueError(
            f"cannot load {source}: missing {_some(missing)} ({len(missing)} of the {len(needed)} "
            f"tensors needed up to this layer); it has {_some(list(state))} ({len(state)} keys); "
            f'rename them with --model.weights_map, e.g. \'{{"^module\\\\.": ""}}\' drops '
            f"a 'module.' prefix"
        )
    used = {k: state[k] for k in needed if k in state}
    for key, tensor in used.items():
        if tensor.shape != needed[key].shape:
            raise ValueError(
                f"cannot load {source}: {key} has shape {tuple(tensor.shape)}, expected "
                f"{tuple(needed[key].shape)}"
            )
    # A NaN or an infinity in a weight makes every feature, and so the loss, non-finite at once.
    broken = [k for k, t in used.items() if t.is_floating_point() and not t.isfinite().all()]
    if broken:
        raise ValueError(
            f"cannot load {source}: {_some(broken)} {'holds' if len(broken) == 1 else 'hold'} NaN "
            f"or infinite values ({len(broken)} "
            f"of the {len(used)} tensors needed up to this layer); accepted: finite weights only"
        )
    model.load_state_dict(used, strict=False)
    return len(used)


def load_file(
    model: nn.Module, body: nn.Module, spec: str, weights_map: Mapping[str, str] | None, name: str,
    members: list[str] = (),
) -> str:  # fmt: skip
    """Load the state-dict file ``spec`` into ``body`` (a part of ``model``, see
    :func:`load_needed`); the description of the weights for the run's outputs."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(
            f"weights {spec!r} for {name}: expected 'auto', 'random', "
            f"{''.join(f'{m!r}, ' for m in members)}or the path of an existing state-dict file"
        )
    state = read_state_dict(path, weights_map)
    used = load_needed(model, body, state, f"{name} weights {path}")
    return f"{path} ({used} tensors used, {len(state) - used} unused keys)"
