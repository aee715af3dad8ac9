"""Sweeps: one command inverts the same images for many layers, methods, λ_D or K values.

Each combination is a *job*: a run of its own (results, PNGs, TensorBoard) in a folder of the
sweep's run directory, and one row of ``summary.csv``. The images are read once. A model read by
hooks (any ``nn.Module`` or model spec, a torchvision module path) is built and loaded once for the
whole sweep and read at each job's layer; a named network is built once and cut at each job's
layer (``weights.reused_models``; its weights file is read again for each cut). With several
devices the jobs are dealt out (``dealing``): each process runs the next job no process has
claimed yet, alone on its device, so that a sweep of many jobs over few images keeps every device
busy. ``run`` runs one from Python and returns its rows; ``runner.Runner`` runs a config's
``sweep`` section.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from slp_lightning.defences import DEFENCES, build_defence
from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.maths.pyramid import check_pyramid_size
from slp_lightning.methods import METHODS
from slp_lightning.module.lightning_model import FeatureInversion
from slp_lightning.networks import NETWORKS, FeatureNetwork, ModuleNetwork, layer_names
from slp_lightning.networks.hooks import unknown_layer_error
from slp_lightning.networks.weights import reused_models
from slp_lightning.outputs.files import measured
from slp_lightning.outputs.summaries import summary_row
from slp_lightning.running import batched
from slp_lightning.running.dealing import Workers, deal
from slp_lightning.running.pieces import (
    append_line,
    check_plan,
    fit_piece,
    problem,
    read_lines,
    say_how_to_resume,
)
from slp_lightning.running.run_folders import folder_name, logger_for

PLAN = "sweep.json"  # the problem and jobs a sweep was started with: its resume needs the same
JOBS = "jobs.jsonl"  # a line per finished job: its summary row


@dataclass(frozen=True)
class Job:
    """One inversion of a sweep; ``None`` keeps the model's own setting."""

    method: str
    network: str
    layer: str | None
    compactness: float | None
    pyramid_levels: int | None
    defence: str | None = None
    defence_aware: bool | None = None

    def label(self, sweep: Sweep) -> str:
        """The method, plus λ_D, K, the defence and what the attacker knows when the sweep varies
        them: a row of ``summary.md``."""
        label = self.method
        if self.defence is not None:
            label += f" {self.defence}"
        if sweep.defence_aware and len(sweep.defence_aware) > 1 and self.defence_aware is not None:
            label += " aware" if self.defence_aware else " unaware"
        if sweep.compactness and len(sweep.compactness) > 1 and self.compactness is not None:
            label += f" λ_D={self.compactness:g}"
        if (
            sweep.pyramid_levels
            and len(sweep.pyramid_levels) > 1
            and self.pyramid_levels is not None
        ):
            label += f" K={self.pyramid_levels}"
        return label

    def column(self, sweep: Sweep) -> str:
        """The job's column in ``summary.md``: its layer, or its network when networks vary."""
        if sweep.networks and len(sweep.networks) > 1:
            return self.network if not sweep.layers else f"{self.network}:{self.layer}"
        return self.layer or "default"

    def name(self, sweep: Sweep) -> str:
        """Folder name of the job: its label and column, e.g. ``slp_K4_conv5``."""
        label = self.label(sweep).replace(" λ_D=", "_lambda").replace(" K=", "_K")
        if self.defence is not None:  # quantise:2 -> quantise2
            label = label.replace(f" {self.defence}", f" {self.defence.replace(':', '')}")
        return folder_name(f"{label.replace(' ', '_')}_{self.column(sweep)}".replace(":", "_"))


@dataclass
class Sweep:
    """The axes of a sweep; every combination is a job. Leave all empty for a single run.

    Args:
        methods: ``slp``, ``pixel``, ``tv`` (see ``FeatureInversion``).
        networks: network names (e.g. ``dsift`` and ``dsift_color``); their layers are their
            default ones unless ``layers`` names some.
        layers: layer names of the model's network.
        compactness: λ_D values (``slp`` only).
        pyramid_levels: K values (``slp`` only).
        defences: defences of the features (``FeatureInversion.defence``: ``none``,
            ``noise:0.3``, ``quantise:2``, …): an audit, a job per defence.
        defence_aware: ``[true, false]``: each defence attacked knowing it and not (``none``
            gets one job).
        channels: units of a feature visualisation (``0-31`` or a list): each job visualises
            them all in one batch, a row per unit (``channel:C``, or ``neuron:C`` when the model's
            objective is a neuron), and its sheet is their atlas.
        batch: run the jobs that differ only in λ_D and K as rows of one batch
            (``running.batched``): each job's results as its own run's, one run's overhead;
            ``false``: job after job, each with its own TensorBoard and checkpoints.
    """

    methods: list[str] | None = None
    networks: list[str] | None = None
    layers: list[str] | None = None
    compactness: list[float] | None = None
    pyramid_levels: list[int] | None = None
    defences: list[str] | None = None
    defence_aware: list[bool] | None = None
    channels: list[int] | str | None = None
    batch: bool = True

    def __post_init__(self) -> None:
        for axis, given, valid in [
            ("methods", self.methods, METHODS),
            ("networks", self.networks, NETWORKS),
        ]:
            unknown = [v for v in given or [] if v not in valid]
            if unknown:
                raise ArgumentError(
                    f"{axis}: unknown {unknown}; valid: {', '.join(valid)}", f"Sweep.{axis}"
                )
        for levels in self.pyramid_levels or []:
            check_range(levels, "Sweep.pyramid_levels", low=1, integer=True)
        for compactness in self.compactness or []:
            check_range(compactness, "Sweep.compactness", low=0)
        self.units()  # a bad range fails now
        for defence in self.defences or []:
            try:
                build_defence(defence)
            except ValueError as error:
                raise ArgumentError(f"defences: {error}", "Sweep.defences") from None

    def __bool__(self) -> bool:
        return any(
            [self.methods, self.networks, self.layers, self.compactness, self.pyramid_levels,
             self.defences, self.defence_aware, self.channels]
        )  # fmt: skip

    def units(self) -> list[int]:
        """The channels of ``channels`` (``3-5`` is 3, 4, 5)."""
        if self.channels is None:
            return []
        if isinstance(self.channels, str):
            first, dash, last = self.channels.partition("-")
            try:
                units = list(range(int(first), int(last) + 1)) if dash else [int(first)]
            except ValueError:
                raise ArgumentError(
                    f"channels: {self.channels!r} is no range; give FIRST-LAST or a list",
                    "Sweep.channels",
                ) from None
        else:
            units = list(self.channels)
        if not units or min(units) < 0:
            raise ArgumentError(
                f"channels are indices >= 0, at least one; got {self.channels!r}", "Sweep.channels"
            )
        return units

    def objectives(self, objective: object) -> list[str] | None:
        """The per-row objectives of a job visualising ``channels`` (``None``: no units), with
        the term of the model's ``objective`` when it is a neuron."""
        units = self.units()
        if not units:
            return None
        term = (
            "neuron" if isinstance(objective, str) and objective.startswith("neuron") else "channel"
        )
        return [f"{term}:{unit}" for unit in units]

    def jobs(self, method: str, network: str, layer: str | None) -> list[Job]:
        """Every combination, with the model's method, network and layer where the sweep does
        not vary them. λ_D and K only mean something for ``slp``: baselines get one job each.
        """
        jobs = []
        for each_method, each_network, each_layer in itertools.product(
            self.methods or [method],
            self.networks or [network],
            self.layers or [layer if not self.networks else None],
        ):
            pyramid = METHODS[each_method].coarse_to_fine
            for compactness, levels, defence in itertools.product(
                (self.compactness if pyramid else None) or [None],
                (self.pyramid_levels if pyramid else None) or [None],
                [build_defence(d).spec if ":" not in d or d.split(":")[0] in DEFENCES else d
                 for d in self.defences or []] or [None],
            ):  # fmt: skip
                defends = defence is not None and build_defence(defence).defends
                for aware in (self.defence_aware if defends else None) or [None]:
                    jobs.append(
                        Job(
                            each_method,
                            each_network,
                            each_layer,
                            compactness,
                            levels,
                            defence,
                            aware,
                        )
                    )
        return jobs


def _run_job(
    sweep: Sweep, job: Job, model: FeatureInversion, datamodule: LightningDataModule,
    trainer_for: Callable[[TensorBoardLogger], Trainer], run_dir: Path,
) -> dict | None:  # fmt: skip
    """One job of ``run``: its summary row on the first process of its run, ``None`` on others."""
    name = job.name(sweep)
    overrides = {k: v for k, v in vars(job).items() if v is not None or k == "layer"}
    units = sweep.objectives(model.hparams.get("objective"))
    if units is not None:
        overrides["objective"] = units
    if job.network == model.hparams["network"]:
        del overrides["network"]  # the model's own network, reused where it can be
    job_model = model.with_settings(**overrides)
    trainer = trainer_for(logger_for(run_dir / name))
    say_how_to_resume(trainer, run_dir)
    start = time.perf_counter()
    results = fit_piece(trainer, run_dir / name, job_model, datamodule, "a sweep's Trainers")
    if results is None:
        return None
    seconds = time.perf_counter() - start
    row = summary_row(results, name, job.label(sweep), job.column(sweep), seconds)
    append_line(run_dir / JOBS, row)
    return row


def _own_layers(network: FeatureNetwork) -> tuple[str, ...]:
    """The layers a model that is not a named network can be read at."""
    return network.layer_names() if isinstance(network, ModuleNetwork) else (network.layer,)


def run(
    sweep: Sweep,
    model: FeatureInversion,
    datamodule: LightningDataModule,
    trainer_for: Callable[[TensorBoardLogger], Trainer],
    run_dir: Path,
    workers: Workers = Workers(),  # noqa: B008 - frozen: one process, no collectives
) -> list[dict]:
    """Run every job of ``sweep``: ``model``'s settings with the job's changes, each with a
    Trainer from ``trainer_for(logger)`` (its logger writes to ``run_dir/<job name>``; the
    Trainer needs an ``OutputWriter``; with several ``workers``, a one-device Trainer on this
    worker's device: the jobs are dealt out). Returns the ``summary.csv`` rows in job order (on
    the first process; an empty list on the others); ``summaries.write_summary`` writes them.
    """
    settings = model.hparams
    jobs = sweep.jobs(settings["method"], settings["network"], settings["layer"])
    for job in jobs:  # fail before the first job runs, not in the middle of the sweep
        valid = (
            _own_layers(model.network) if job.network == settings["network"] not in NETWORKS
            else layer_names(job.network, settings["arch"])
        )  # fmt: skip
        if job.layer is not None and job.layer not in valid:
            raise unknown_layer_error(f"sweep: {job.network}", job.layer, valid)
        if job.pyramid_levels is not None:
            check_pyramid_size(model.image_size, model.image_size, job.pyramid_levels)
    by_name = {job.name(sweep): job for job in jobs}
    names = datamodule.target_names() if hasattr(datamodule, "target_names") else []
    axes = {axis: value for axis, value in asdict(sweep).items() if axis != "batch"}
    current = problem(model.settings(), names, sweep=axes, jobs=list(by_name))
    if (run_dir / PLAN).exists() or workers.rank == 0:
        check_plan(run_dir, PLAN, "a sweep", current)
    done = {row["job"]: row for row in read_lines(run_dir / JOBS) if row["job"] in by_name}
    if done:
        rank_zero_info(f"resuming {run_dir}: {len(done)} of {len(jobs)} jobs finished, skipped")
    where = f" on process {workers.rank}" if workers.world > 1 else ""
    pending = [job for name, job in by_name.items() if name not in done]
    together = batched.groups(pending, model) if sweep.batch else [[job] for job in pending]
    units = {(f"batch_{group[0].name(sweep)}" if len(group) > 1 else group[0].name(sweep)): group
             for group in together}  # fmt: skip

    def work(unit: str) -> dict[str, dict]:
        group = units[unit]
        if len(group) > 1:
            rows = batched.run_batch(sweep, group, model, datamodule, trainer_for, run_dir)
            for row in rows.values():
                append_line(run_dir / JOBS, row)
        else:
            row = _run_job(sweep, group[0], model, datamodule, trainer_for, run_dir)
            rows = {} if row is None else {group[0].name(sweep): row}
        for name, row in rows.items():
            rank_zero_info(
                f"job {list(by_name).index(name) + 1}/{len(jobs)} {name} done{where}{measured(row)}"
            )
        return rows

    with reused_models():  # a named network is built once, then cut at each job's layer
        finished = deal(run_dir, workers, list(units), work)
    rows = {name: row for unit_rows in finished.values() for name, row in unit_rows.items()}
    if workers.rank != 0:
        return []
    rows |= done
    return [rows[name] for name in by_name if rows.get(name) is not None]
