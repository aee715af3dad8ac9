"""What a checkpoint must match to be resumed, and whether its run has anything left to do."""

from __future__ import annotations

import hashlib
import pickle
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

RESULTS = "results.json"
CONFIG = "config.yaml"  # the whole resolved config, which the command line saves in a run folder
# How torch.load(weights_only=True) says that a file needs more than tensors and plain values.
_NEEDS_PICKLE = "Weights only load failed"


def fingerprint(
    settings: dict[str, Any],
    names: list[str],
    targets: Tensor | None,
    features: Tensor | None = None,
) -> dict[str, Any]:
    """The problem a run solves: the ``settings`` that define it, the targets' names and a hash
    of their pixels (at 8 bits, so that float rounding between machines does not count), or of
    the target features (at half precision) for a run that has features and no images."""
    if targets is None and features is None:  # a visualisation: its names say it all
        values = torch.zeros(0, dtype=torch.uint8)
    elif features is not None:
        values = features.detach().cpu().half()
    else:
        values = (targets.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    digest = hashlib.sha256(values.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[
        :16
    ]
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


def check_problem(checkpoint: dict[str, Any], problem: dict[str, Any]) -> None:
    """Refuse a checkpoint of another problem than ``problem`` (``fingerprint``), listing the
    differences. Checkpoints from before fingerprints have none: only their image count is
    checked, when their rows are read."""
    mismatches = differences(checkpoint["problem"], problem) if "problem" in checkpoint else []
    if mismatches:
        raise ValueError(
            f"cannot resume: the checkpoint is of another problem ({'; '.join(mismatches)}); "
            f"resume with the checkpoint's settings and targets, or start a new run"
        )


# A checkpoint from before the inversion's split into modules (d9dec37 and older) kept I_pre and
# the switching state at the top level, and its switch_steps column j - 1 held the step level j
# came on.
_MOVED = {
    "I_pre": "inversion.I_pre",
    **{
        k: f"schedule.{k}"
        for k in ("finest_on", "phase_best", "phase_start", "last_improved", "done")
    },
}


def migrated(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A checkpoint's ``state_dict``, an older one's entries renamed in place (``_MOVED``) and its
    switch steps put in the order the switches were made."""
    if "I_pre" in state:
        for old, new in _MOVED.items():
            state[new] = state.pop(old)
        state["schedule.switch_steps"] = state.pop("switch_steps").flip(1)
    return state


def finished(ckpt_path: str | Path, max_steps: int) -> str | None:
    """A sentence saying that the checkpoint's run has nothing left to do and where its results
    are, or ``None`` when resuming it with ``max_steps`` would run more steps."""
    path = Path(ckpt_path)
    if not path.is_file():
        return None  # Lightning's own names ("last", "hpc") and missing files are Lightning's
    checkpoint = read_checkpoint(path)
    step, done = (
        checkpoint.get("global_step", 0),
        migrated(checkpoint["state_dict"]).get("schedule.done"),
    )
    if 0 < max_steps <= step:
        why = f"it reached step {step}, and --trainer.max_steps is {max_steps}; raise it to go on"
    elif (
        isinstance(done, Tensor)
        and len(done)
        and bool(done.all())
        and not checkpoint.get("partial")
    ):
        why = f"every image had converged by step {step}"
    else:
        return None
    results = path.parent.parent / RESULTS
    where = f"its results are in {results}" if results.exists() else f"no {RESULTS} is beside it"
    return f"nothing to resume: {path} is a finished run ({why}); {where}"


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The Lightning checkpoint in ``path``, read as tensors and plain values only
    (``weights_only``): a file whose unpickling would call code is refused, never run."""
    try:
        with warnings.catch_warnings():  # a plain pickle file's protocol: noise before the refusal
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if _NEEDS_PICKLE in str(error):
            found = re.search(r"GLOBAL (\S+)", str(error))
            what = f" (it needs {found.group(1)})" if found else ""
            raise ValueError(
                f"checkpoint {path} is refused: reading it would call code or build objects other "
                f"than tensors and plain values{what}, and checkpoints are only read with "
                f"torch.load(weights_only=True); give a .ckpt file this tool wrote"
            ) from None
        raise ValueError(_unreadable(path, error)) from None
    except Exception as error:  # noqa: BLE001 - a foreign file fails in many ways (EOFError, KeyError, …)
        raise ValueError(_unreadable(path, error)) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(
            f"checkpoint {path} holds a {type(checkpoint).__name__} without a state_dict, not a "
            f"Lightning checkpoint; give a .ckpt file this tool wrote"
        )
    return checkpoint


def _unreadable(path: Path, error: Exception) -> str:
    """The sentence for a file torch.load cannot read at all: empty, text, corrupt or cut short."""
    why = (
        "it is empty"
        if path.stat().st_size == 0
        else f"a text file, or corrupt or cut short: {type(error).__name__}"
    )
    return f"cannot read checkpoint {path} ({why}); give a .ckpt file this tool wrote"


def resume_command(ckpt_path: Path | str, config: Path | None) -> str:
    """The command that resumes from ``ckpt_path``: with the run's saved ``config`` when there is
    one (the command line's runs), else the flag alone."""
    flag = f"--ckpt_path {shlex.quote(str(ckpt_path))}"
    if config is None or not config.exists():
        return flag
    return f"python -m slp_lightning fit --config {shlex.quote(str(config))} {flag}"
