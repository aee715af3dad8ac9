"""The inversion as a LightningModule: ``I_pre`` is its only parameter.

The maths is ``torch_model.Inversion``; the switching state and the learning-rate rule are
``schedule``'s; sharding and checkpoint rows are ``distributed``'s. This module turns settings
into those collaborators and runs them in a Trainer.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from slp_lightning.callbacks.switch import PyramidSwitch
from slp_lightning.data.images import reference_images
from slp_lightning.defences import DefenceSpec, build_defence
from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.inversion.n_f import measure_n_f
from slp_lightning.inversion.threat import Threat, stand_in
from slp_lightning.inversion.torch_model import Inversion
from slp_lightning.inversion.visualisation import check_visualisation, visual_rows
from slp_lightning.maths.guards import FiniteWatch
from slp_lightning.maths.losses import compactness_for_layer
from slp_lightning.maths.pyramid import check_pyramid_size
from slp_lightning.maths.schedule import LearningRates, SwitchSchedule, band_multiples
from slp_lightning.maths.transforms import TransformSpec, build_transforms
from slp_lightning.methods import MethodSettings, build_method
from slp_lightning.module import distributed
from slp_lightning.module.checks import check_precision, warn_if_flat
from slp_lightning.module.resume import check_problem, fingerprint, migrated
from slp_lightning.networks import (
    FeatureNetwork,
    ModuleNetwork,
    Network,
    build_feature_network,
    default_coarse_lr,
)
from slp_lightning.objectives import INVERSION, ObjectiveSpec, build_objective

# The frozen networks' entries of the state dict: rebuilt from their specs, never checkpointed.
_FROZEN = ("inversion.network.", "inversion.victim_network.")
# What builds the network: a job that changes none of them reuses the model (``with_settings``).
_NETWORK_SETTINGS = {
    "network", "weights", "arch", "weights_map", "network_args", "in_channels", "input_mean", "input_std",
}  # fmt: skip


def adam(params) -> torch.optim.Optimizer:  # noqa: ANN001 - an OptimizerCallable
    """The default optimiser: Adam with lr 0.05 on ``I_pre`` (logit units)."""
    return torch.optim.Adam(params, lr=0.05)


def check_optimizer(optimizer: OptimizerCallable) -> None:
    """Refuse, before any step, an optimiser that cannot be made (torch's own sentence) or whose
    learning rate is not above 0, by making it once on a stand-in parameter."""
    try:
        made = optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as error:
        raise ArgumentError(f"optimizer: {error}", "FeatureInversion.optimizer") from None
    lr = made.param_groups[0].get("lr")
    if isinstance(lr, int | float):
        check_range(lr, "FeatureInversion.optimizer.lr", low=0, low_open=True)


class FeatureInversion(pl.LightningModule):
    """Reconstruct images from one layer's features with a switched Laplacian pyramid.

    Args:
        method: a name in ``methods.METHODS``: ``slp`` (the paper: switched Laplacian
            pyramid), or a baseline with the same range constraint and no pyramid: ``pixel``
            (plain descent on ``E``), ``tv`` (Mahendran & Vedaldi's normalised data term with
            α-norm and TV^β regularisers) or ``fft`` (plain descent on ``E`` with Lucid's
            parametrisation: ``I_pre`` a 1/f-scaled spectrum, colours decorrelated).
        network: feature network: a name (``alexnet``, ``alexnet_caffe``, ``dsift``,
            ``dsift_color``, ``torchvision`` with ``arch``, ``craft_vgg16_bn``), any ``nn.Module``
            or ``FeatureNetwork``, or a model's spec: ``PKG.MODULE:CALLABLE`` (a class or
            factory, called with ``network_args``), a TorchScript or ``.pt2`` file,
            ``timm:NAME``, ``hf:FOLDER`` (``networks.sources``, ``networks.hub_sources``).
        layer: layer whose features are inverted: a name of a named network (``conv5``,
            ``relu3_3``) or a module path of a model (``features.6``, ``layer3.1``,
            ``blocks.5``), read by a forward hook; ``None``: conv5 for AlexNets, the descriptors
            for SIFT, a model's output; ``list`` on the command line prints every layer with its
            output shape.
        weights: ``auto``, ``random``, a torchvision weights name or a state-dict path.
        arch: the torchvision classification model for ``network: torchvision`` (``vgg16``).
        pyramid_levels: K, the number of Laplacian pyramid levels.
        compactness: λ_D, weight of the compactness term; ``None`` takes the paper's value
            for the layer.
        image_size: side of the square images; ``None`` takes the network's input size.
        init_noise: standard deviation of the seeded Gaussian noise ``I_pre`` starts from
            (0 starts from mid-grey, where dense SIFT has no gradient; for ``fft`` the noise of
            the spectrum).
        optimizer: the optimiser of ``I_pre``.
        reference_images: folder of images whose features give N_f for the normalised error;
            ``None`` uses the run's own targets when there are at least two, else a few of
            scikit-image's photographs.
        tv_weights: ``(λ_α, λ_TV)`` of the ``tv`` method; ``None`` takes the defaults for the
            layer (``objective.TV_WEIGHTS``).
        lr_schedule: ``constant``, or ``cosine``: each image's learning rate falls to 1 % of
            its start along a cosine over its final phase, from the step it began (step 0 for
            the baselines, whose one phase is the run) to the Trainer's ``max_steps``; coarse
            phases run at ``coarse_lr`` (``schedule.LearningRates``).
        weights_map: regex -> replacement, applied in order to every key of a weights file
            (``{"^module\\.": ""}`` drops DataParallel's prefix); ``None``: the network's own.
        n_f: N_f itself, instead of measuring it (a chunked run gives every chunk the one of
            its first chunk, so that errors compare across the dataset).
        coarse_lr: the learning rate of the coarse phases, as a multiple of the optimiser's (1:
            the same); ``None``: the network's own (0.2 for colour dense SIFT, where Adam's steady
            coarse steps add up to contrast a nearly flat channel never had, else 1;
            benchmarks/RESULTS.md, "Why blinds stalled").
        band_lr: the final phase's learning rate per Laplacian level of each step, as multiples
            of the image's, finest first, the last for the low-pass residual of a
            ``len(band_lr)``-level pyramid of the step (independent of ``pyramid_levels``):
            ``[1, 2, 4, 8, 16, 32]`` doubles the rate per octave, the 1/f scaling Lucid's
            spectrum gives ``fft``, so the brightness and layout the features barely see move
            as fast as the detail; ``[0.5, 1]`` halves the finest band's (benchmarks/RESULTS.md).
            ``1``: the plain step. Beyond ±4.6 (``I_r`` within 1 % of the range's ends) a
            filtered step goes no further out than the plain step (``LearningRates.bounded``).
            Only the switched methods on pixels read it (``slp``, ``slp_color``), as K and λ_D.
        network_args: keyword arguments of a model's class or factory (or of a torchvision
            ``arch``: ``{"image_size": 64}``).
        in_channels: the channels a model takes (3; 1 inverts grey images).
        input_mean: a model's input convention: numbers per channel subtracted from [0, 1]
            images before ``input_std`` divides them; ``'none'`` for a model that takes [0, 1];
            ``None``: its source's (timm's, a Hugging Face processor's), else ImageNet's.
        input_std: see ``input_mean``.
        output: the entry (key or index) of a layer that gives a tuple, list, dict or ModelOutput.
        tokens: token features (N, T, D) of a Vision Transformer: ``all``, ``cls`` (the class
            token) or ``patch`` (the patch tokens as a (D, h, w) grid).
        defence: what the client does to the features before the attacker sees them
            (``defences``): ``noise:σ``, ``laplace:b``, ``quantise:BITS``, ``topk:KEEP``,
            ``dropout:P``, ``none``, a ``Defence``, any callable from features to features, or
            ``PKG.MODULE:CALLABLE``. Named (``none`` too), the run is an audit: the task's
            utility is measured and the threat recorded; ``None``: a plain inversion.
        defence_args: the defence's options (``{per_channel: true}``, ``{rescale: false}``), or
            the keyword arguments of a defence class named by import path.
        defence_aware: whether the attacker knows the defence: it then compares its features
            with what the defence allows (a quantised value is a bin, a dropped one unknown);
            else with the observed features as they are.
        attacker_network: a stand-in the attacker inverts through instead of the victim's
            network (any network spec); ``None``: the victim's, with ``attacker_weights`` and
            ``attacker_layer`` when given (``attacker_weights: random``: the architecture
            without its weights).
        attacker_weights: the stand-in's weights (``None``: the victim's for its own network,
            else ``auto``).
        attacker_layer: the stand-in's layer (``None``: ``layer``); its features must have the
            victim's shape.
        objective: what a feature visualisation maximises (``objectives``): ``channel:C``,
            ``neuron:C``, ``direction:FILE``, ``class:K``, ``diversity:W``, weighted sums
            (``class:1 + 0.5*diversity``), or a list of them, one row each; ``inversion`` (the
            default): the targets' features are inverted. A visualisation starts from noise, a row
            per objective and seed (``TargetImages.seeds``), and needs no photographs.
        objective_args: options of the objective's terms (``{cossim_power: 1}`` for direction).
        transforms: what the image goes through at random before the network at every step
            (``transforms``): ``none``, ``lucid`` (pad 12, jitter 8, scale ±10 %, rotate ±10°,
            jitter 4) or a list (``[pad:8, jitter:4]``); ``None``: none.
        steps_per_call: optimiser steps in one Lightning step (``training_step``), each one the
            same as alone (guards, learning rates, switching, at the same steps); what Lightning
            does per step (the clock, its hooks, the callbacks' own step ends: checkpoints every
            ``every_n_train_steps``, TensorBoard images) then happens once per call, at steps that
            are multiples of it. Lightning's cost per step is shared out; results are the same.

    ``setup`` takes the targets from the datamodule (``set_targets`` does the same without a
    Trainer): ``inversion`` (``torch_model.Inversion``) then holds ``I_pre``, the targets and
    their features, and ``schedule`` (``schedule.SwitchSchedule``) each image's pyramid state;
    checkpoints hold both.
    """

    def __init__(
        self,
        method: str = "slp",
        network: Network = "alexnet",
        layer: str | None = None,
        weights: str = "auto",
        arch: str | None = None,
        pyramid_levels: int = 6,
        compactness: float | None = None,
        image_size: int | None = None,
        init_noise: float = 0.1,
        optimizer: OptimizerCallable = adam,
        reference_images: str | None = None,
        tv_weights: tuple[float, float] | None = None,
        lr_schedule: str = "cosine",
        weights_map: dict[str, str] | None = None,
        n_f: float | None = None,
        coarse_lr: float | None = None,
        band_lr: float | list[float] = 1.0,
        network_args: dict[str, Any] | None = None,
        in_channels: int | None = None,
        input_mean: tuple[float, ...] | str | None = None,
        input_std: tuple[float, ...] | str | None = None,
        output: str | int | None = None,
        tokens: str | None = None,
        defence: DefenceSpec = None,
        defence_args: dict[str, Any] | None = None,
        defence_aware: bool = True,
        attacker_network: Network | None = None,
        attacker_weights: str | None = None,
        attacker_layer: str | None = None,
        steps_per_call: int = 1,
        objective: ObjectiveSpec = INVERSION,
        objective_args: dict[str, Any] | None = None,
        transforms: TransformSpec = None,
    ) -> None:
        super().__init__()
        check_range(steps_per_call, "FeatureInversion.steps_per_call", low=1, integer=True)
        # Several optimiser steps in one training_step: Lightning's cost per step shared out.
        self.automatic_optimization = steps_per_call == 1
        check_range(pyramid_levels, "FeatureInversion.pyramid_levels", low=1, integer=True)
        check_range(image_size, "FeatureInversion.image_size", low=1, integer=True)
        check_range(n_f, "FeatureInversion.n_f", low=0, low_open=True)
        if in_channels not in (None, 1, 3):
            raise ArgumentError(
                f"in_channels is 3 (colour) or 1 (grey); got {in_channels!r}",
                "FeatureInversion.in_channels",
            )
        check_optimizer(optimizer)
        # Objects are no settings: hparams name them; with_settings reuses them.
        given = {"network": network, "defence": defence, "attacker_network": attacker_network}
        #: what was given as an object (a model, a defence): with_settings reuses it
        self.given = {k: v for k, v in given.items() if not isinstance(v, str | None)}
        self.save_hyperparameters(ignore=["optimizer", *self.given])
        options = {
            "weights": weights, "arch": arch, "weights_map": weights_map, "network_args": network_args,
            "in_channels": in_channels, "input_mean": input_mean, "input_std": input_std, "output": output,
            "tokens": tokens,
        }  # fmt: skip
        feature_network = build_feature_network(network, layer, **options)
        attacker = stand_in(
            feature_network,
            attacker_network,
            attacker_layer,
            attacker_weights,
            network,
            layer,
            options,
        )
        threat = Threat(
            build_defence(defence, defence_args), defence_aware,
            victim=None if attacker is None else feature_network, audited=defence is not None,
        )  # fmt: skip
        if "network" in self.given:  # reused as built by with_settings
            self.given["network"] = feature_network
            self.hparams["network"] = feature_network.name
        if "defence" in self.given:
            self.hparams["defence"] = threat.defence.spec
        if coarse_lr is None:
            coarse_lr = default_coarse_lr(feature_network.name)
        self.compactness = (
            compactness_for_layer(feature_network.name, feature_network.layer)
            if compactness is None
            else compactness
        )
        inverted = build_method(
            method,
            MethodSettings(
                feature_network.layer, self.compactness, tv_weights, init_noise=init_noise,
                levels=pyramid_levels,
            ),
        )  # fmt: skip
        multiples = band_multiples(band_lr) if inverted.coarse_to_fine else (1.0,)
        self.rates = LearningRates(lr_schedule, coarse_lr, multiples)
        if not inverted.pixel_I_pre and self.rates.filters_bands:
            raise ArgumentError(
                f"band_lr filters pyramid bands of I_pre's pixels; the {inverted.name} method's "
                "I_pre is a spectrum, give it band_lr 1",
                "FeatureInversion.band_lr",
                "FeatureInversion.method",
            )
        self.inversion = Inversion(
            attacker or feature_network,
            inverted,
            pyramid_levels,
            feature_network.input_size if image_size is None else image_size,
            threat,
        )
        self.visualises = objective not in (None, INVERSION)
        if self.visualises:
            check_visualisation(
                inverted, threat, self.inversion.feature_shape, objective, objective_args
            )
        build_transforms(transforms)  # a bad setting fails now
        if self.rates.filters_bands:
            size = self.inversion.image_size
            try:
                check_pyramid_size(size, size, len(multiples))
            except ValueError as error:
                raise ArgumentError(
                    f"band_lr has {len(multiples)} levels, too many for image_size {size} "
                    f"({error}): give band_lr fewer entries or a larger image_size",
                    "FeatureInversion.band_lr",
                    "FeatureInversion.image_size",
                ) from None
        self.optimizer = optimizer
        self.schedule: SwitchSchedule | None = None
        #: every target's name, in order, and those of the targets this process inverts
        self.names: list[str] = []
        self.local_names: list[str] = []
        self.utility: Tensor | None = None
        self.utility_about: str | None = None
        #: a visualisation's objective per row (every process's rows), as the command line names it
        self.row_objectives: list[str] = []

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
        inversion, network = self.inversion, self.inversion.victim
        return {
            "method": inversion.method.name, "network": network.name, "arch": self.hparams.arch,
            "layer": network.layer, "weights": network.weights, "output": self.hparams.output,
            "tokens": self.hparams.tokens, "image_size": inversion.image_size,
            "pyramid_levels": inversion.pyramid.levels, "compactness": self.compactness,
            **({"threat": threat} if (threat := inversion.threat.describe(inversion.network)) else {}),
            **({"objective": self.hparams.objective, "transforms": self.hparams.transforms} if self.visualises else {}),
        }  # fmt: skip

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
                if getattr(datamodule, "given", False):
                    raise ArgumentError(
                        "a visualisation starts from noise and maximises its objective: it takes "
                        "seeds, not images or features (the objective is not inversion)",
                        "TargetImages.seeds",
                        "FeatureInversion.objective",
                    )
                names, specs = visual_rows(
                    self.hparams.objective, getattr(datamodule, "seeds", None) or 1
                )
                self.set_visualisation(names, specs, self._rows(len(names)))
                return
            rows = self._rows(len(datamodule.names))
            self.set_targets(
                datamodule.targets,
                datamodule.names,
                rows,
                features=getattr(datamodule, "features", None),
            )

    def set_targets(
        self,
        targets: Tensor | None,
        names: list[str],
        rows: Tensor | None = None,
        features: Tensor | None = None,
    ) -> None:
        """Fix the targets (N, 3, S, S) in [0, 1], of which this process inverts ``rows``
        (default: all): compute ``f(I)`` once and create ``I_pre``, one row per owned target.
        With ``features`` (N, …), those are ``f(I)`` and ``targets`` (may be ``None``) is only
        the ground truth for PSNR and SSIM.

        For a network of grey images the targets become grey (the mean of R, G and B) and
        ``I_pre`` has one channel. The starting noise of a target does not depend on ``rows``,
        nor what a defence lets through of its features (``Inversion.observe``), which is seeded
        by the run's seed and the target's name. An audit measures the task's utility here.
        """
        inversion, size = self.inversion, self.inversion.image_size
        # Every process computes f of every target: N_f needs them all, and it saves a gather.
        targets, all_features = inversion.take(targets, features)
        rows = torch.arange(len(names)) if rows is None else rows
        # The method makes every target's start from the seed, then this process keeps its rows.
        seed = torch.initial_seed() % 2**63
        generator = torch.Generator().manual_seed(seed)
        shape = (len(names), inversion.network.in_channels, size, size)
        I_pre = inversion.method.initial_I_pre(shape, generator)
        # What a checkpoint of this run must match to be resumed.
        self.problem = fingerprint(self.settings(), names, targets, features)
        self.names, self.local_names = list(names), [names[i] for i in rows.tolist()]
        n_f = self.measure_n_f(None, all_features)
        observed = inversion.observe(all_features, names, seed)
        if inversion.threat.aware and inversion.threat.defence.defends:  # photographs of its own
            own = reference_images(self.hparams.reference_images, size, exclude=tuple(names))
            inversion.calibrate(own)
        #: per target, 1.0 where the task keeps its top-1 class with the observed features (an
        #: audit's utility; ``None`` when not measured, ``utility_about`` then says why)
        self.utility, self.utility_about = inversion.threat.utility(
            inversion.victim, targets, all_features, observed
        )
        device = self.device
        inversion.set_targets(
            None if targets is None else targets[rows],
            all_features[rows],
            I_pre[rows].to(device),
            n_f,
            observed[rows],
        )
        self.schedule = SwitchSchedule(
            len(rows), inversion.pyramid.levels, inversion.method.coarse_to_fine, device
        )
        self.watch = FiniteWatch(len(rows), device)

    def set_visualisation(
        self, names: list[str], specs: list[str], rows: Tensor | None = None
    ) -> None:
        """Visualise ``specs`` (one objective per row, named ``names``), of which this process
        has ``rows`` (default: all): ``I_pre`` from the seed, no targets."""
        inversion, size = self.inversion, self.inversion.image_size
        rows = torch.arange(len(names)) if rows is None else rows
        seed = torch.initial_seed() % 2**63
        shape = (len(names), inversion.network.in_channels, size, size)
        I_pre = inversion.method.initial_I_pre(shape, torch.Generator().manual_seed(seed))
        self.names, self.local_names = list(names), [names[i] for i in rows.tolist()]
        self.row_objectives = list(specs)
        self.problem = fingerprint(self.settings(), names, None, None)
        objective = build_objective([specs[i] for i in rows.tolist()], inversion.feature_shape,
                                    options=self.hparams.objective_args)  # fmt: skip
        inversion.set_objective(objective, I_pre[rows].to(self.device))
        inversion.transforms = build_transforms(self.hparams.transforms, seed)
        device = self.device
        self.schedule = SwitchSchedule(
            len(rows), inversion.pyramid.levels, inversion.method.coarse_to_fine, device
        )
        self.watch = FiniteWatch(len(rows), device)

    def measure_n_f(self, targets: Tensor | None, features: Tensor | None = None) -> float:
        """The N_f that ``set_targets`` would use for these targets (or their ``features``):
        ``n_f`` when given, else measured (``n_f.measure_n_f``) on the network's device."""
        if self.hparams.n_f is not None:
            return self.hparams.n_f
        _, features = self.inversion.take(targets, features)
        return measure_n_f(self.inversion, features, self.hparams.reference_images)

    def gather(self, local: Tensor) -> Tensor:
        """All processes' rows of a per-image tensor, in target order (every process must call)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return local
        return distributed.gather_rows(
            local, len(self.names), self.trainer.world_size, self.trainer.strategy.all_gather
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["problem"] = self.problem
        # The frozen networks are rebuilt from their weights specs; keep checkpoints to I_pre and state.
        for key in [k for k in checkpoint["state_dict"] if k.startswith(_FROZEN)]:
            del checkpoint["state_dict"][key]
        if self.inversion.transforms is not None:  # a resume draws what the run would have
            checkpoint["transforms"] = self.inversion.transforms.state()
        partial = self.trainer.world_size > 1 and self.trainer.interrupted
        distributed.save_rows(checkpoint, len(self.local_names), self.gather, partial)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_problem(checkpoint, self.problem)
        if self.inversion.transforms is not None and "transforms" in checkpoint:
            self.inversion.transforms.restore(checkpoint["transforms"])
        state = migrated(checkpoint["state_dict"])
        total = len(self.names)
        distributed.own_rows(checkpoint, total, self._rows(total), "inversion.I_pre")
        state.update({k: v for k, v in self.state_dict().items() if k.startswith(_FROZEN)})

    def _rows(self, total: int) -> Tensor:
        """The targets this process inverts, of ``total``."""
        return distributed.shard(total, self.global_rank, self.trainer.world_size)

    # ----------------------------------------------------------------- the steps
    def training_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        if self.automatic_optimization:
            return self._losses()
        optimizer, switch = self.optimizers(), self._switch()
        max_steps = self.trainer.max_steps
        calls = self.hparams.steps_per_call
        for _ in range(min(calls, max_steps - self.global_step) if max_steps > 0 else calls):
            outputs = self._losses()
            optimizer.zero_grad()
            self.manual_backward(outputs["loss"])
            self.rates.step(
                self.inversion.I_pre, optimizer.step, self.schedule, self.global_step,
                max_steps, self.inversion.pyramid,
            )  # fmt: skip
            switch.after_step(self.trainer, self, outputs["per_image"])
            if self.trainer.should_stop:
                break
        return outputs

    def _switch(self) -> PyramidSwitch | None:
        return next((c for c in self.trainer.callbacks if isinstance(c, PyramidSwitch)), None)

    def _losses(self) -> dict[str, Tensor]:
        """One step's losses, recorded by the guards and logged on Lightning's logging steps."""
        E, D, Z = self.inversion.losses(self.schedule.finest_on, self.schedule.coarsest)
        self.watch.loss(Z, self.global_step)
        # Only on the steps Lightning writes its logs: a log call costs more than a small step.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict({"loss/E": E.mean(), "loss/D": D.mean(), "loss/Z": Z.mean()})
            self.log("pyramid/level", self.schedule.finest_on.float().mean())
        # Summing keeps the images independent: row n's gradient only depends on image n.
        return {"loss": Z.sum(), "per_image": Z.detach()}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        grad = self.inversion.I_pre.grad
        self.watch.gradient(grad, self.global_step, scaled)
        if self.global_step == 0:
            warn_if_flat(grad)
        switch = self._switch()
        if switch is None or switch.reads(self.global_step, self.trainer.max_steps, self.device):
            self.watch.check(self.local_names)  # before the step: I_pre keeps its last value

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The schedule is per image (``schedule.LearningRates``), applied in ``optimizer_step``.
        return self.optimizer([self.inversion.I_pre])

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """The optimiser's step with each image's learning rate (``LearningRates.step``)."""
        self.rates.step(
            self.inversion.I_pre, lambda: optimizer.step(closure=optimizer_closure), self.schedule,
            self.global_step, self.trainer.max_steps, self.inversion.pyramid,
        )  # fmt: skip
