"""Independent inversions on many devices: each rank optimises its own images.

Plain DDP averages gradients and broadcasts parameters, which would make every rank's ``I_pre``
the same. ``IndependentDDPStrategy`` keeps DDP's process group, launch and collectives but does
not wrap the module. Targets are sharded round-robin: rank r owns targets r, r + world, …
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from torch import Tensor

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


class PeerLostError(RuntimeError):
    """Another process of the run stopped answering: it crashed or was killed."""


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


def needs_processes(accelerator: str, devices: int | str | list[int], num_nodes: int) -> bool:
    """Whether a Trainer with these settings runs more than one process."""
    if num_nodes > 1:
        return True
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    if isinstance(devices, str) and "," in devices:  # a list of device ids, "0," is one
        return len([d for d in devices.split(",") if d.strip()]) > 1
    if devices in ("auto", "-1", -1):
        # Lightning's "auto" takes every GPU there is; a CPU run stays one process.
        return accelerator in ("auto", "gpu", "cuda") and torch.cuda.device_count() > 1
    return int(devices) > 1
