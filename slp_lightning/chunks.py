"""Datasets in chunks: invert a folder, glob or features file of any size, ``chunk_size``
targets at a time, so that memory is bounded by the chunk and not by the dataset.

Each chunk is a run of its own (``chunk_0000/``: PNGs, ``results.json``, checkpoints,
TensorBoard) under the dataset's run directory; each finished chunk appends one line to
``results.jsonl`` (its images' results), and ``summary.json`` holds the means over every image
(after each chunk of a one-process run; at the end with several). Resuming the directory skips
finished chunks and resumes an unfinished one from its ``last.ckpt``.

With several devices the chunks are dealt out (``dealing``): every process takes the next chunk
no process has claimed yet and inverts it alone on its device, so that every device stays busy to
the end. N_f is measured once, on the first chunk, so that errors compare across the dataset.
"""

from __future__ import annotations

import gc
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from slp_lightning import semantic
from slp_lightning.callbacks import output_writer
from slp_lightning.data import TargetImages
from slp_lightning.dealing import Workers, deal
from slp_lightning.errors import ArgumentError
from slp_lightning.inversion import FeatureInversion
from slp_lightning.outputs import measured
from slp_lightning.resume import read_checkpoint

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
PLAN = "chunks.json"  # the chunk size a chunked run was started with: its resume needs the same
# ``chunk_size: auto`` takes at most this share of the device's memory, and at most
# ``MAX_AUTO_CHUNK`` targets: a chunk is also the unit of progress, resume and dealing to devices.
MEMORY_SHARE = 0.5
MAX_AUTO_CHUNK = 256


def target_bytes(model: FeatureInversion) -> int:
    """An estimate of the memory one target takes while it is inverted: the network's activations
    for one image (kept for the backward pass, and about as much again for their gradients), the
    image's own tensors (``I_pre``, its gradient, Adam's two moments, ``I_r``, ``I_in``, the
    pyramid's levels, the target) and its features, in float32."""
    network, size = model.network, model.image_size
    images = torch.zeros(1, network.in_channels, size, size, device=network.device)
    if any(isinstance(module, torch.jit.ScriptModule) for module in network.modules()):
        activations, features = _saved_for_backward(network, images)
    else:
        activations, features = _leaf_outputs(network, images)
    image = network.in_channels * size * size
    return 4 * (2 * activations + (8 + 2 * model.pyramid.levels) * image + features.numel())


def _leaf_outputs(network: torch.nn.Module, images: Tensor) -> tuple[int, Tensor]:
    """The elements of every leaf module's output in ``network(images)``, and the features."""
    activations: list[int] = []
    leaves = [module for module in network.modules() if not list(module.children())]
    hooks = [
        leaf.register_forward_hook(lambda _m, _i, out: activations.append(out.numel()))
        for leaf in leaves
    ]
    try:
        with torch.no_grad():
            features = network(images)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(activations), features


def _saved_for_backward(network: torch.nn.Module, images: Tensor) -> tuple[int, Tensor]:
    """The elements autograd saves for the backward of ``network(images)``, and the features: what
    a TorchScript model's hidden leaves hold (forward hooks do not see inside compiled code)."""
    saved = [0]

    def pack(tensor: Tensor) -> Tensor:
        saved[0] += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        features = network(images.requires_grad_()).detach()
    return saved[0], features


def device_memory(device: torch.device) -> int:
    """Bytes of memory ``device`` has (for the CPU, the machine's). The total, not what is free
    now: every process of a run, and the run's resume, must arrive at the same chunk size."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_chunk_size(model: FeatureInversion, device: torch.device) -> int:
    """The chunk size ``auto`` means on ``device``: as many targets as fit in ``MEMORY_SHARE`` of
    its memory (``target_bytes`` each), at least 1 and at most ``MAX_AUTO_CHUNK``."""
    return max(
        1, min(MAX_AUTO_CHUNK, int(MEMORY_SHARE * device_memory(device) / target_bytes(model)))
    )


def planned_chunk_size(run_dir: Path, chunk_size: int | str | None) -> int:
    """The chunk size of the chunked run in ``run_dir`` (being resumed): ``chunk_size`` must be
    the same, or ``auto``."""
    plan = run_dir / PLAN
    if not plan.exists():
        raise ValueError(
            f"{run_dir} is not a chunked run's folder (it has no {PLAN}): resume a single run from "
            f"its checkpoint file, e.g. {run_dir / 'checkpoints' / 'last.ckpt'}"
        )
    planned = json.loads(plan.read_text())["chunk_size"]
    if chunk_size not in (planned, "auto"):
        raise ArgumentError(
            f"{run_dir} was chunked by {planned}, not {chunk_size}: give chunk_size {planned} "
            f"(or auto) to resume it",
            "TargetImages.chunk_size",
        )
    return planned


def chunk_name(index: int) -> str:
    return f"chunk_{index:04d}"


def finished_chunks(run_dir: Path) -> dict[int, dict]:
    """The chunks ``results.jsonl`` holds: index -> its line."""
    path = run_dir / RESULTS
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {line["chunk"]: line for line in lines}


def summarize(run_dir: Path, total: int) -> dict:
    """``summary.json``: the means over every image of the finished chunks."""
    images = [
        image for line in sorted(finished_chunks(run_dir).items()) for image in line[1]["images"]
    ]

    def mean(measure: str) -> float | None:
        values = [image[measure] for image in images]
        return None if not values or None in values else sum(values) / len(values)

    summary = {
        "images": len(images), "of": total,
        **{f"mean_{m}": mean(m) for m in ("normalized_error", "relative_error", "psnr", "ssim", "hf_ratio")},
    }  # fmt: skip
    if images and all(
        "semantic" in image for image in images
    ):  # scored by an evaluation classifier
        summary.update(semantic.means_of([image["semantic"] for image in images]))
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _append(run_dir: Path, line: dict) -> None:
    """Add a finished chunk's line to ``results.jsonl`` in one write, so that processes
    appending at the same time never interleave."""
    descriptor = os.open(run_dir / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (json.dumps(line) + "\n").encode())
    finally:
        os.close(descriptor)


def _first_chunk_n_f(
    model: FeatureInversion, data: TargetImages, size: int, device: torch.device
) -> float:
    first = data.chunk(range(min(size, len(data.target_names()))))
    model.network.to(device)
    try:
        return model.normaliser(first.targets, first.features)
    finally:
        model.network.cpu()


def run(
    model: FeatureInversion,
    data: TargetImages,
    chunk_size: int,
    trainer_for: Callable[[TensorBoardLogger], Trainer],
    run_dir: Path,
    workers: Workers = Workers(),  # noqa: B008 - frozen: one process, no collectives
) -> dict:
    """Invert every target of ``data`` in chunks of ``chunk_size``, with ``model``'s settings
    and a Trainer from ``trainer_for(logger)`` per chunk (it needs an ``OutputWriter``; with
    several ``workers``, a one-device Trainer on this worker's device); skips the chunks
    ``run_dir/results.jsonl`` already holds. Returns the summary (on rank 0; ``{}`` on the
    others, which write only their chunks' folders and lines)."""
    names = data.target_names()
    count = math.ceil(len(names) / chunk_size)
    done = finished_chunks(run_dir)
    if done:
        rank_zero_info(f"resuming {run_dir}: {len(done)} of {count} chunks finished, skipped")
    if workers.rank == 0 and not (run_dir / PLAN).exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / PLAN).write_text(
            json.dumps({"chunk_size": chunk_size, "targets": len(names)}) + "\n"
        )
    n_f = model.hparams.n_f or next((line["N_f"] for _, line in sorted(done.items())), None)
    if n_f is None:
        n_f = workers.broadcast(
            _first_chunk_n_f(model, data, chunk_size, workers.device) if workers.rank == 0 else None
        )
    where = f" on process {workers.rank}" if workers.world > 1 else ""

    def work(name: str) -> None:
        index = int(name.removeprefix("chunk_"))
        rows = range(index * chunk_size, min((index + 1) * chunk_size, len(names)))
        chunk = data.chunk(rows)
        trainer = trainer_for(TensorBoardLogger(run_dir.parent, name=run_dir.name, version=name))
        writer = output_writer(trainer, "a chunked run's Trainers")
        last = run_dir / name / "checkpoints" / "last.ckpt"
        if last.exists():
            read_checkpoint(last)  # refuse a file that needs pickle in a sentence, not a traceback
        trainer.fit(model.with_settings(n_f=n_f), datamodule=chunk, ckpt_path=last if last.exists() else None,
                    weights_only=True)  # fmt: skip
        if trainer.is_global_zero:
            results = writer.results
            _append(run_dir, {"chunk": index, "steps": results["steps"], "N_f": results["N_f"],
                              "images": results["images"]})  # fmt: skip
            if workers.world == 1:  # alone, it may read the file while the run goes on
                summarize(run_dir, len(names))
            images = f"{len(rows)} image{'s' if len(rows) != 1 else ''}"
            rank_zero_info(f"chunk {index + 1}/{count} done{where}, {images}{measured(results)}")
        # The chunk's Trainer, module and callbacks refer to each other: free them now, not at
        # some later cycle collection, or several chunks' tensors pile up (1.41× the memory at 224 px).
        del trainer, writer, chunk
        gc.collect()

    deal(run_dir, workers, [chunk_name(index) for index in range(count) if index not in done], work)
    if workers.rank != 0:
        return {}
    # In chunk order, whichever process finished first: the file a one-process run writes.
    lines = finished_chunks(run_dir)
    (run_dir / RESULTS).write_text(
        "".join(json.dumps(lines[index]) + "\n" for index in sorted(lines))
    )
    return summarize(run_dir, len(names))
