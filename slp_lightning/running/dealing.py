"""Work dealt out to processes, one device each: a sweep's jobs, a dataset's chunks.

``launch_workers`` starts one process per device (Lightning Fabric's launcher, as the Trainer's;
under torchrun or SLURM they exist already). Each process takes the next piece of work no process
has claimed yet (a claim file, created exclusively, in the run folder: several nodes need that on
a shared file system) and does it alone on its device, as a one-process run, so that every device
stays busy to the end and no step waits for another device.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.pytorch.utilities import rank_zero_only

CLAIMS = ".claims"


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


def _alone() -> None:
    """The barrier of a single process."""


def _same(value: Any) -> Any:  # noqa: ANN401 - any picklable value
    return value


@dataclass(frozen=True)
class Workers:
    """The processes work is dealt to, one per device: this one's ``rank`` of ``world``, its
    ``device``, and the collectives they share (``barrier``; ``broadcast`` sends rank 0's value to
    all). ``session`` names this launch, so that a resumed run ignores the last one's claims."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    barrier: Callable[[], None] = _alone
    broadcast: Callable[[Any], Any] = _same
    session: str = "single"


def first_device(accelerator: str, devices: int | str | list[int]) -> torch.device:
    """The device the first process of a run with these settings works on, without starting
    any process (Lightning's choice for ``auto``)."""
    return Fabric(accelerator=accelerator, devices=devices).device


def launch_workers(accelerator: str, devices: int | str | list[int], num_nodes: int) -> Workers:
    """The processes for these Trainer settings: started now when there are several (this
    process becomes rank 0) and joined in a process group; else this process alone."""
    if not needs_processes(accelerator, devices, num_nodes):
        return Workers(device=first_device(accelerator, devices))
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
    fabric.launch()
    return Workers(
        rank=fabric.global_rank, world=fabric.world_size, device=fabric.device,
        barrier=fabric.barrier, broadcast=fabric.broadcast, session=fabric.broadcast(uuid.uuid4().hex),
    )  # fmt: skip


@contextmanager
def sole_writer() -> Iterator[None]:
    """Within, this process writes its logs as rank 0 does: a dealt piece of work is a
    one-process run, and its process the only writer of its folder (TensorBoard writes on rank 0
    only)."""
    rank = rank_zero_only.rank
    rank_zero_only.rank = 0
    try:
        yield
    finally:
        rank_zero_only.rank = rank


def _claim_file(run_dir: Path, workers: Workers, name: str) -> Path:
    return run_dir / CLAIMS / workers.session / name


def claim(run_dir: Path, workers: Workers, name: str) -> bool:
    """Whether this process takes the work ``name``: the first to create its claim file does."""
    if workers.world == 1:
        return True
    path = _claim_file(run_dir, workers, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.open("x").close()
    except FileExistsError:
        return False
    return True


def deal(
    run_dir: Path, workers: Workers, names: Iterable[str], work: Callable[[str], Any]
) -> dict[str, Any]:
    """Do ``work(name)`` for every name, each on the process that claims it first (inside
    ``sole_writer`` when there are several). Returns, on rank 0, each name's result (JSON
    values), in the order of ``names``; ``{}`` on the other processes. Every process must call."""
    names = list(names)
    results = {}
    for name in names:
        if not claim(run_dir, workers, name):
            continue
        if workers.world == 1:
            results[name] = work(name)
            continue
        with sole_writer():
            result = work(name)
        # The claim file carries the result to rank 0: a JSON value, not a tensor to gather.
        _claim_file(run_dir, workers, name).write_text(json.dumps(result))
    if workers.world == 1:
        return results
    workers.barrier()
    if workers.rank != 0:
        return {}
    results = {name: json.loads(_claim_file(run_dir, workers, name).read_text()) for name in names}
    shutil.rmtree(run_dir / CLAIMS, ignore_errors=True)
    return results
