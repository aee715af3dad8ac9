"""The inversion as a LightningModule whose only parameter is ``I_pre``: settings become an
``Inversion`` (``building``), run in a Trainer with its steps (``steps``) and every process's
rows and checkpoints (``rows``)."""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from slp_lightning.callbacks.switch import PyramidSwitch
from slp_lightning.defences import DefenceSpec
from slp_lightning.errors import check_range
from slp_lightning.inversion import building
from slp_lightning.inversion.n_f import measure_n_f
from slp_lightning.inversion.visualisation import visual_rows
from slp_lightning.maths.guards import FiniteWatch
from slp_lightning.maths.schedule import SwitchSchedule
from slp_lightning.maths.transforms import TransformSpec
from slp_lightning.module import distributed
from slp_lightning.module.checks import adam, check_optimizer, check_precision
from slp_lightning.module.resume import fingerprint
from slp_lightning.module.rows import ProcessRows
from slp_lightning.module.steps import InversionSteps
from slp_lightning.networks import FeatureNetwork, ModuleNetwork, Network
from slp_lightning.objectives import INVERSION, ObjectiveSpec

# What builds the network: a job that changes none of them reuses the model (``with_settings``).
_NETWORK_SETTINGS = {
    "network", "weights", "arch", "weights_map", "network_args", "in_channels", "input_mean", "input_std",
}  # fmt: skip


class FeatureInversion(InversionSteps, ProcessRows):
    """Reconstruct images from one layer's features with a switched Laplacian pyramid, attack
    defended features, or visualise what a unit responds to (the site's pages say more).

    Args:
        method: ``slp`` (the paper), ``pixel``, ``tv``, ``fft``, ``slp_fft``, ``slp_color`` or
            ``joint_pyramid`` (``methods.METHODS``).
        network: a name (``alexnet``, ``alexnet_caffe``, ``dsift``, ``dsift_color``,
            ``torchvision`` with ``arch``, ``craft_vgg16_bn``), an ``nn.Module``, or a model's
            spec: ``PKG.MODULE:CALLABLE``, a TorchScript or ``.pt2`` file, ``timm:NAME``, ``hf:FOLDER``.
        layer: a named network's layer (``conv5``) or a model's module path (``features.6``);
            ``None``: its default, or a model's output; ``list`` prints every layer and shape.
        weights: ``auto``, ``random``, a torchvision weights name or a state-dict path.
        arch: the torchvision classification model of ``network: torchvision`` (``vgg16``).
        pyramid_levels: K, the number of Laplacian pyramid levels.
        compactness: λ_D, weight of the compactness term; ``None``: the paper's for the layer.
        image_size: side of the square images; ``None``: the network's input size.
        init_noise: std of the seeded Gaussian noise ``I_pre`` starts from (of the spectrum for fft).
        optimizer: the optimiser of ``I_pre`` (Adam, lr 0.05).
        reference_images: photographs whose features give N_f (``None``: the targets, when two
            or more, else scikit-image's); an aware attacker calibrates on them.
        tv_weights: ``(λ_α, λ_TV)`` of ``tv``; ``None``: the layer's defaults.
        lr_schedule: ``cosine`` (each image's rate falls to 1 % over its final phase) or ``constant``.
        weights_map: regex -> replacement, in order, for every key of a weights file.
        n_f: N_f itself, instead of measuring it.
        coarse_lr: the coarse phases' learning rate, a multiple of the optimiser's; ``None``:
            the network's own.
        band_lr: the final phase's rate per Laplacian level of each step, finest first, multiples
            of the image's (``[0.5, 1, 2, 4, 8, 16]``); ``1``: the plain step.
        network_args: keyword arguments of a model's class or factory (or a torchvision arch).
        in_channels: the channels a model takes (3; 1 inverts grey images).
        input_mean: a model's input convention, subtracted from [0, 1] images (``'none'``:
            none; ``None``: its source's, else ImageNet's).
        input_std: see ``input_mean``, what divides them.
        output: the entry of a layer that gives a tuple, list, dict or ModelOutput.
        tokens: a Vision Transformer's tokens: ``all``, ``cls`` or ``patch`` (a (D, h, w) grid).
        defence: what the client does to the features before the attacker sees them:
            ``noise:σ``, ``laplace:b``, ``quantise:BITS``, ``topk:KEEP``, ``dropout:P``,
            ``none``, a ``Defence``, a callable or ``PKG.MODULE:CALLABLE``; named (``none``
            too), the run is an audit; ``None``: a plain inversion.
        defence_args: the defence's options (``{per_channel: true}``, ``{rescale: false}``).
        defence_aware: whether the attacker knows the defence and compares what it allows.
        attacker_network: a stand-in the attacker inverts through (any network spec); ``None``:
            the victim's own, with ``attacker_weights`` and ``attacker_layer`` when given.
        attacker_weights: the stand-in's weights (``random``: the architecture without them).
        attacker_layer: the stand-in's layer (``None``: ``layer``).
        objective: what a visualisation maximises: ``channel:C``, ``neuron:C``,
            ``direction:FILE``, ``class:K``, ``diversity:W``, sums (``class:1 + 0.5*diversity``)
            or a list, one row each; ``inversion``: the targets' features are inverted.
        objective_args: options of the objective's terms (``{cossim_power: 1}``).
        transforms: ``none``, ``lucid`` (pad, jitter, scale, rotate) or a list, at every step.
        steps_per_call: optimiser steps in one Lightning step, each the same as alone.

    ``setup`` takes the targets from the datamodule (``set_targets`` without a Trainer;
    ``set_visualisation`` for a visualisation's rows): ``inversion`` (``Inversion``) then holds
    ``I_pre``, and ``schedule`` (``SwitchSchedule``) each image's pyramid state; checkpoints hold
    both.
    """

    def __init__(
        self, method: str = "slp", network: Network = "alexnet", layer: str | None = None, weights: str = "auto",
        arch: str | None = None, pyramid_levels: int = 6, compactness: float | None = None,
        image_size: int | None = None, init_noise: float = 0.1, optimizer: OptimizerCallable = adam,
        reference_images: str | None = None, tv_weights: tuple[float, float] | None = None,
        lr_schedule: str = "cosine", weights_map: dict[str, str] | None = None, n_f: float | None = None,
        coarse_lr: float | None = None, band_lr: float | list[float] = 1.0,
        network_args: dict[str, Any] | None = None, in_channels: int | None = None,
        input_mean: tuple[float, ...] | str | None = None, input_std: tuple[float, ...] | str | None = None,
        output: str | int | None = None, tokens: str | None = None, defence: DefenceSpec = None,
        defence_args: dict[str, Any] | None = None, defence_aware: bool = True,
        attacker_network: Network | None = None, attacker_weights: str | None = None,
        attacker_layer: str | None = None, steps_per_call: int = 1, objective: ObjectiveSpec = INVERSION,
        objective_args: dict[str, Any] | None = None, transforms: TransformSpec = None,
    ) -> None:  # fmt: skip
        arguments = dict(locals())  # first: the arguments alone
        super().__init__()
        check_range(steps_per_call, "FeatureInversion.steps_per_call", low=1, integer=True)
        # Several optimiser steps in one training_step: Lightning's cost per step shared out.
        self.automatic_optimization = steps_per_call == 1
        check_range(n_f, "FeatureInversion.n_f", low=0, low_open=True)
        check_optimizer(optimizer)
        given = {"network": network, "defence": defence, "attacker_network": attacker_network}
        #: what was given as an object (a model, a defence): hparams name it, with_settings reuses it
        self.given = {k: v for k, v in given.items() if not isinstance(v, str | None)}
        self.save_hyperparameters(ignore=["optimizer", *self.given])
        built = building.build(**{k: v for k, v in arguments.items() if k in building.ARGUMENTS})
        self.inversion, self.rates, self.visualises = built.inversion, built.rates, built.visualises
        self.compactness = built.compactness
        if "network" in self.given:  # reused as built by with_settings
            self.given["network"] = built.network
            self.hparams["network"] = built.network.name
        if "defence" in self.given:
            self.hparams["defence"] = self.inversion.threat.defence.spec
        self.optimizer = optimizer
        self.schedule: SwitchSchedule | None = None
        #: every target's name, in order, and those of the targets this process inverts
        self.names: list[str] = []
        self.local_names: list[str] = []
        #: an audit's utility per target (``None``: not measured; ``utility_about`` says why)
        self.utility: Tensor | None = None
        self.utility_about: str | None = None
        #: a visualisation's objective per row (every process's rows), as the command line names it
        self.row_objectives: list[str] = []
        #: a batch of jobs (``running.batched``): each job's λ_D and K, the targets once per job
        self.jobs: tuple[list[float], list[int]] | None = None

    def with_settings(self, **changes: Any) -> FeatureInversion:
        """A fresh module with this one's settings and optimiser, ``changes`` applied (a job of a
        sweep, a chunk of a dataset); the objects it was given are reused unless changed."""
        accepted = inspect.signature(FeatureInversion).parameters
        settings = {k: v for k, v in self.hparams.items() if k in accepted}
        settings |= {k: v for k, v in self.given.items() if k != "network"}
        victim = self.inversion.victim
        reusable = isinstance(victim, ModuleNetwork) or "network" in self.given
        if reusable and not _NETWORK_SETTINGS & changes.keys():
            settings["network"] = victim  # the same model, read at the job's layer
        return FeatureInversion(**{**settings, **changes}, optimizer=self.optimizer)

    @property
    def network(self) -> FeatureNetwork:
        """The feature network f whose features are inverted, frozen: the victim's
        (``inversion.victim``; the attacker may invert them through a stand-in,
        ``inversion.network``)."""
        return self.inversion.victim

    @property
    def image_size(self) -> int:
        """The side of the square images inverted."""
        return self.inversion.image_size

    def settings(self) -> dict[str, Any]:
        """What defines the problem besides its targets, as ``results.json`` names it."""
        return building.settings(self.inversion, self.hparams, self.compactness, self.visualises)

    # ----------------------------------------------------------------- targets and state
    def configure_callbacks(self) -> list[pl.Callback]:
        """A ``PyramidSwitch`` with its defaults when the Trainer has none: without it the run
        would never leave the coarsest level (nor stop when every image has converged)."""
        if any(isinstance(callback, PyramidSwitch) for callback in self.trainer.callbacks):
            return []
        return [PyramidSwitch()]

    def setup(self, stage: str) -> None:
        distributed.check_strategy(self.trainer.strategy)
        check_precision(self.trainer.precision)
        if self.inversion.I_pre is None:
            datamodule = self.trainer.datamodule
            # f(I) is computed once, on the device that will run the inversion.
            self.inversion.network.to(self.trainer.strategy.root_device)
            self.inversion.victim.to(self.trainer.strategy.root_device)
            if self.visualises:
                names, specs = visual_rows(self.hparams.objective, datamodule)
                self.set_visualisation(names, specs, self._rows(len(names)))
                return
            rows = self._rows(len(datamodule.names))
            features = getattr(datamodule, "features", None)
            self.set_targets(datamodule.targets, datamodule.names, rows, features=features)

    def set_targets(
        self,
        targets: Tensor | None,
        names: list[str],
        rows: Tensor | None = None,
        features: Tensor | None = None,
    ) -> None:
        """Fix the targets (N, 3, S, S) in [0, 1] (or their ``features``, N, …; the targets then
        only the ground truth), of which this process inverts ``rows`` (default: all)
        (``building.start_targets``): a grey network's targets become grey."""
        rows = torch.arange(len(names)) if rows is None else rows
        self.names, self.local_names = list(names), [names[i] for i in rows.tolist()]
        started = building.start_targets(
            self.inversion, targets, names, rows, features, self._seed(), self.hparams.n_f,
            self.hparams.reference_images, self.device, len(self.jobs[0]) if self.jobs else 1,
        )  # fmt: skip
        self.utility, self.utility_about = started.utility, started.utility_about
        # What a checkpoint of this run must match to be resumed (a batch's: its jobs too).
        settings = {**self.settings(), "jobs": self.jobs} if self.jobs else self.settings()
        self.problem = fingerprint(settings, names, started.targets, features)
        self._new_schedule(len(rows))

    def set_visualisation(
        self, names: list[str], specs: list[str], rows: Tensor | None = None
    ) -> None:
        """Visualise ``specs`` (one objective per row, named ``names``), of which this process
        has ``rows`` (default: all): ``I_pre`` from the seed, no targets."""
        rows = torch.arange(len(names)) if rows is None else rows
        self.names, self.local_names = list(names), [names[i] for i in rows.tolist()]
        self.row_objectives = list(specs)
        self.problem = fingerprint(self.settings(), names, None, None)
        building.start_visualisation(
            self.inversion, specs, rows, self._seed(), self.hparams.objective_args,
            self.hparams.transforms, self.device,
        )  # fmt: skip
        self._new_schedule(len(rows))

    @staticmethod
    def _seed() -> int:
        """The run's seed (``seed_everything``'s): every start and observation is drawn from it."""
        return torch.initial_seed() % 2**63

    def _new_schedule(self, count: int) -> None:
        """This process's ``count`` images' switching state and guards, at the start (in a batch
        of jobs, each image's λ_D and K its job's: ``building.job_rows``)."""
        inversion = self.inversion
        start, jobs = building.job_rows(inversion, self.jobs, count) if self.jobs else (None, None)
        self.schedule = SwitchSchedule(
            count,
            inversion.pyramid.levels,
            inversion.method.coarse_to_fine,
            self.device,
            start,
            jobs,
        )
        self.watch = FiniteWatch(count, self.device)

    def measure_n_f(self, targets: Tensor | None, features: Tensor | None = None) -> float:
        """The N_f that ``set_targets`` would use for these targets (or their ``features``):
        ``n_f`` when given, else measured (``n_f.measure_n_f``) on the network's device."""
        if self.hparams.n_f is not None:
            return self.hparams.n_f
        _, features = self.inversion.take(targets, features)
        return measure_n_f(self.inversion, features, self.hparams.reference_images)
