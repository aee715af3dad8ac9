"""What a checkpoint must match to be resumed, and whether its run has anything left to do."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

RESULTS = "results.json"


def fingerprint(
    settings: dict[str, Any], names: list[str], targets: Tensor | None, features: Tensor | None = None
) -> dict[str, Any]:
    """The problem a run solves: the ``settings`` that define it, the targets' names and a hash
    of their pixels (at 8 bits, so that float rounding between machines does not count), or of
    the target features (at half precision) for a run that has features and no images."""
    if features is not None:
        values = features.detach().cpu().half()
    else:
        values = (targets.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    digest = hashlib.sha256(values.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
    return {**settings, "images": list(names), "pixels": digest}


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"[{', '.join(map(repr, value[:3]))}, … ({len(value)} images)]"
    return repr(value)


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field: checkpoint value vs run value`` for each field of ``current`` that differs (the
    pixel hash only when nothing else explains it)."""
    found = [
        f"{key}: {_short(saved.get(key))} (checkpoint) vs {_short(value)} (this run)"
        for key, value in current.items()
        if saved.get(key) != value and key != "pixels"
    ]
    if not found and saved.get("pixels") != current.get("pixels"):
        found.append("pixels: the images have the same names but other contents")
    return found


def finished(ckpt_path: str | Path, max_steps: int) -> str | None:
    """A sentence saying that the checkpoint's run has nothing left to do and where its results
    are, or ``None`` when resuming it with ``max_steps`` would run more steps."""
    path = Path(ckpt_path)
    if not path.is_file():
        return None  # Lightning's own names ("last", "hpc") and missing files are Lightning's
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    step, done = checkpoint.get("global_step", 0), checkpoint.get("state_dict", {}).get("done")
    if 0 < max_steps <= step:
        why = f"it reached step {step}, and --trainer.max_steps is {max_steps}; raise it to go on"
    elif isinstance(done, Tensor) and len(done) and bool(done.all()) and not checkpoint.get("partial"):
        why = f"every image had converged by step {step}"
    else:
        return None
    results = path.parent.parent / RESULTS
    where = f"its results are in {results}" if results.exists() else f"no {RESULTS} is beside it"
    return f"nothing to resume: {path} is a finished run ({why}); {where}"
