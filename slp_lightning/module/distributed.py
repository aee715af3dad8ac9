"""Independent inversions on many devices: each rank optimises its own images.

Plain DDP averages gradients and broadcasts parameters, which would make every rank's ``I_pre``
the same. ``IndependentDDPStrategy`` keeps DDP's process group, launch and collectives but does
not wrap the module. Targets are sharded round-robin: rank r owns targets r, r + world, …

(A sweep's jobs and a dataset's chunks are dealt out whole to the processes instead: ``dealing``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, ParallelStrategy, Strategy, StrategyRegistry
from torch import Tensor

from slp_lightning.errors import PeerLostError

STRATEGY_NAME = "independent_ddp"


class IndependentDDPStrategy(DDPStrategy):
    """DDP without the gradient-averaging wrapper: the right strategy for per-rank images."""

    strategy_name = STRATEGY_NAME

    def configure_ddp(self) -> None:
        # Nothing to synchronise: each rank's I_pre rows are its own, the network is frozen.
        pass


StrategyRegistry.register(
    STRATEGY_NAME,
    IndependentDDPStrategy,
    description="DDP processes that optimise independent rows of I_pre (no gradient averaging)",
)


def lost_peer(error: Exception, rank: int, world: int, step: int) -> PeerLostError:
    """The error for a collective that failed at ``step`` because another process is gone."""
    who = f"process {1 - rank}" if world == 2 else "another process"
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return PeerLostError(
        f"{who} of this {world}-process run is gone: the exchange at step {step} failed ({detail})"
    )


def shard(total: int, rank: int, world: int) -> Tensor:
    """Indices of the targets rank ``rank`` of ``world`` owns: rank, rank + world, …"""
    return torch.arange(rank, total, world)


def gather_rows(local: Tensor, total: int, world: int, all_gather) -> Tensor:  # noqa: ANN001
    """Every rank's rows of a per-target tensor, back in target order (a collective).

    ``all_gather`` is the strategy's (equal shapes on every rank): rows are padded to
    ⌈total / world⌉ first; the padding lands past ``total`` and is cut off.
    """
    if world == 1:
        return local
    per_rank = math.ceil(total / world)
    padded = local.new_zeros((per_rank, *local.shape[1:]))
    padded[: len(local)] = local
    gathered = all_gather(padded)  # (world, per_rank, ...)
    return gathered.transpose(0, 1).reshape(world * per_rank, *local.shape[1:])[:total]


def check_strategy(strategy: Strategy) -> None:
    """Refuse a strategy that would average the gradients of ``I_pre``."""
    if isinstance(strategy, ParallelStrategy) and not isinstance(strategy, IndependentDDPStrategy):
        raise ValueError(
            f"strategy {type(strategy).__name__} would average the gradients of I_pre and make "
            f"every process's images the same; leave the Trainer's strategy 'auto' (several devices "
            f"then use '{STRATEGY_NAME}', which inverts each process's own images)"
        )


def _per_image(values: dict[str, Any], count: int) -> list[str]:
    return [k for k, v in values.items() if isinstance(v, Tensor) and v.shape[:1] == (count,)]


def save_rows(
    checkpoint: dict, count: int, gather: Callable[[Tensor], Tensor], partial: bool
) -> None:
    """Put every process's rows into the checkpoint's per-image tensors: those of the model's
    state and of the optimiser's with ``count`` (this process's image count) rows (a collective:
    ``gather`` is ``FeatureInversion.gather``). ``partial`` (a multi-process run that failed: the
    other processes may be gone) makes no collective and marks the checkpoint partial instead."""
    if partial:
        checkpoint["partial"] = True
        return
    state = checkpoint["state_dict"]
    for key in _per_image(state, count):
        state[key] = gather(state[key])
    for optimizer_state in checkpoint.get("optimizer_states", []):
        # These dicts are the optimiser's live state: build new ones, do not write into them.
        optimizer_state["state"] = {
            index: {
                k: gather(v) if k in _per_image(values, count) else v for k, v in values.items()
            }
            for index, values in optimizer_state["state"].items()
        }


def own_rows(checkpoint: dict, total: int, rows: Tensor, images_key: str) -> None:
    """Keep this process's ``rows`` of the checkpoint's per-image tensors (``total`` rows: every
    process's images, as ``state_dict[images_key]`` has), in the model's state and the
    optimiser's; refuse a partial checkpoint or one of another image count."""
    if checkpoint.get("partial"):
        raise ValueError(
            "this checkpoint was written while a multi-process run failed and holds only the "
            "first process's images: resume from last.ckpt beside it, the newest complete state"
        )
    held = checkpoint["state_dict"][images_key].shape[0]
    if held != total:
        raise ValueError(
            f"the checkpoint holds {held} images, this run has {total}: resume with the same targets"
        )

    def own(values: dict[str, Any]) -> None:
        for key in _per_image(values, total):
            values[key] = values[key][rows]

    own(checkpoint["state_dict"])
    for optimizer_state in checkpoint.get("optimizer_states", []):
        for param_state in optimizer_state["state"].values():
            own(param_state)
