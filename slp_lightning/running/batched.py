"""A sweep's jobs that differ only in λ_D and K, run as rows of one batch: the targets once per
job, each image with its job's λ_D and K, each job frozen at the step its own run would stop, and
afterwards each job's folder written as its own run writes it (PNGs, ``sheet.png``,
``results.json``: the same numbers). The batch's folder holds its TensorBoard events and
checkpoints; a stopped batch resumes as one piece (``pieces.fit_piece``)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning.data.file_names import file_stem
from slp_lightning.data.targets import TargetImages
from slp_lightning.methods import METHODS
from slp_lightning.methods.slp import SwitchedPyramid
from slp_lightning.module.lightning_model import FeatureInversion
from slp_lightning.module.resume import read_checkpoint
from slp_lightning.outputs.files import (
    MEASURES,
    RECONSTRUCTIONS,
    image_means,
    sheet_captions,
    write_sheet,
)
from slp_lightning.outputs.semantic import means_of
from slp_lightning.outputs.summaries import summary_row
from slp_lightning.running.pieces import fit_piece, say_how_to_resume
from slp_lightning.running.run_folders import logger_for


def batchable(job: Any, model: FeatureInversion) -> bool:
    """Whether a job can be a row of a batch: slp's loss (``E + λ_D·D``) on a switched method,
    a plain inversion (no defence, no stand-in, no visualisation) of one process."""
    method = METHODS[job.method]
    plain = model.hparams.get("defence") is None and not model.visualises and job.defence is None
    switched = method.loss is SwitchedPyramid.loss and method.coarse_to_fine
    return switched and plain and model.inversion.threat.victim is None


def groups(jobs: list[Any], model: FeatureInversion) -> list[list[Any]]:
    """The jobs in order, those that differ only in λ_D and K (and can be rows) put together."""
    together: dict[Any, list[Any]] = {}
    for job in jobs:
        key = replace(job, compactness=None, pyramid_levels=None) if batchable(job, model) else job
        together.setdefault(key, []).append(job)
    return list(together.values())


def _repeated(data: LightningDataModule, jobs: int, image_size: int) -> TargetImages:
    """The datamodule's targets once per job, job after job (``<name>.j<k>``)."""
    repeated = TargetImages(image_size=image_size)
    repeated.names = [f"{name}.j{k}" for k in range(jobs) for name in data.names]
    repeated.targets = None if data.targets is None else data.targets.repeat(jobs, 1, 1, 1)
    features = getattr(data, "features", None)
    repeated.features = (
        None if features is None else features.repeat(jobs, *[1] * (features.dim() - 1))
    )
    return repeated


def run_batch(
    sweep: Any, jobs: list[Any], model: FeatureInversion, data: LightningDataModule,
    trainer_for: Callable[[TensorBoardLogger], Trainer], run_dir: Path,
) -> dict[str, dict]:  # fmt: skip
    """The ``jobs`` of ``sweep`` as one batch (its folder ``run_dir/batch_<first job>``); each
    job's summary row by its name, its folder ``run_dir/<name>`` written as its own run writes
    it."""
    data.setup("fit")
    levels = [
        model.hparams.pyramid_levels if job.pyramid_levels is None else job.pyramid_levels
        for job in jobs
    ]
    first = jobs[0]
    overrides = {"method": first.method, "layer": first.layer, "pyramid_levels": max(levels),
                 "n_f": model.measure_n_f(data.targets, getattr(data, "features", None))}  # fmt: skip
    if first.network != model.hparams["network"]:
        overrides["network"] = first.network
    batch = model.with_settings(**overrides)
    # λ_D not given: the model's, or the paper's for the job's layer (as its own run resolves it)
    compactness = [
        batch.compactness if job.compactness is None else job.compactness for job in jobs
    ]
    batch.jobs = (compactness, levels)
    folder = run_dir / f"batch_{first.name(sweep)}"
    trainer = trainer_for(logger_for(folder))
    say_how_to_resume(trainer, run_dir)
    start = time.perf_counter()
    repeated = _repeated(data, len(jobs), model.image_size)
    results = fit_piece(trainer, folder, batch, repeated, "a sweep's Trainers")
    if results is None:
        return {}
    seconds = (time.perf_counter() - start) / len(jobs)  # each job's share of the batch's time
    stops = _job_stops(batch, folder)
    rows = {}
    for k, job in enumerate(jobs):
        name = job.name(sweep)
        settings = {"compactness": compactness[k], "pyramid_levels": levels[k]}
        own = job_results(
            results, data.names, k, settings, stops[k] if stops[k] >= 0 else results["steps"]
        )
        job_dir = run_dir / name
        _copy_pngs(folder, job_dir, data.names, k)
        (job_dir / "results.json").write_text(json.dumps(own, indent=2) + "\n")
        rows_of = slice(k * len(data.names), (k + 1) * len(data.names))
        targets = None if repeated.targets is None else repeated.targets[rows_of]
        write_sheet(targets, data.names, levels[k], job_dir, sheet_captions(own))
        rows[name] = summary_row(own, name, job.label(sweep), job.column(sweep), seconds)
    return rows


def _job_stops(batch: FeatureInversion, folder: Path) -> list[int]:
    """The step each job of ``batch`` stopped at (-1: at the end), from the run just made or,
    when it had finished before, from its last checkpoint."""
    if batch.schedule is not None:
        return batch.schedule.job_stop.tolist()
    state = read_checkpoint(folder / "checkpoints" / "last.ckpt")["state_dict"]
    return state["schedule.job_stop"].tolist()


def _copy_pngs(folder: Path, job_dir: Path, names: list[str], job: int) -> None:
    """The batch's PNGs of job ``job``'s images, named as its own run names them."""
    (job_dir / RECONSTRUCTIONS).mkdir(parents=True, exist_ok=True)
    for name in names:
        row, own = file_stem(f"{name}.j{job}"), file_stem(name)
        for png in (folder / RECONSTRUCTIONS).glob(f"{row}*.png"):
            ending = png.name[len(row) :]
            if ending == ".png" or ending.startswith("_level"):
                shutil.copyfile(png, job_dir / RECONSTRUCTIONS / f"{own}{ending}")


def job_results(batch: dict, names: list[str], job: int, settings: dict, steps: int) -> dict:
    """Job ``job``'s ``results.json`` from the batch's: its images, renamed, its ``settings``
    (λ_D, K) and ``steps``, and its means computed as its own run computes them."""
    rows = batch["images"][job * len(names) : (job + 1) * len(names)]
    images = [
        {**image, "name": name, "file": file_stem(name)}
        for image, name in zip(rows, names, strict=True)
    ]
    own = {
        **batch,
        **settings,
        "steps": steps,
        "images": images,
        **image_means(images, MEASURES[1:]),
    }
    # As the cross-process metric does: each error in double, over N_f, then their mean.
    errors = torch.tensor([i["feature_error"] for i in images], dtype=torch.float64) / batch["N_f"]
    own["mean_normalized_error"] = float(errors.mean())
    if images and all("semantic" in image for image in images):
        own.update(means_of([image["semantic"] for image in images]))
    return own
