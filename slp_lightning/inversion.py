"""The inversion as a LightningModule: ``I_pre`` is its only parameter."""

from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.strategies import ParallelStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from slp_lightning.callbacks import PyramidSwitch
from slp_lightning.data import reference_images
from slp_lightning.distributed import (
    STRATEGY_NAME,
    IndependentDDPStrategy,
    gather_checkpoint,
    gather_rows,
    own_checkpoint_rows,
    shard,
)
from slp_lightning.pyramid import LaplacianPyramid, check_pyramid_size
from slp_lightning.networks import ModuleNetwork, Network, build_feature_network
from slp_lightning.metrics import NormalizedError, image_quality, mean_pairwise_distance
from slp_lightning.methods import MethodSettings, build_method
from slp_lightning.objective import compactness_for_layer, feature_distance, inversion_loss
from slp_lightning.resume import differences, fingerprint

LR_SCHEDULES = ("constant", "cosine")
# What builds the network: a job that changes none of them reuses the model (``with_settings``).
_NETWORK_SETTINGS = {
    "network",
    "weights",
    "arch",
    "weights_map",
    "network_args",
    "in_channels",
    "input_mean",
    "input_std",
}


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradient stopped being finite; ``I_pre`` keeps its last finite value."""


def adam(params) -> torch.optim.Optimizer:  # noqa: ANN001 - an OptimizerCallable
    """The default optimiser: Adam with lr 0.05 on ``I_pre`` (logit units)."""
    return torch.optim.Adam(params, lr=0.05)


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
            ``timm:NAME``, ``hf:FOLDER`` (``networks.sources``).
        layer: layer whose features are inverted: a name of a named network (``conv5``,
            ``relu3_3``) or a module path of a model (``features.6``, ``layer3.1``,
            ``blocks.5``), read by a forward hook; ``None``: conv5 for AlexNets, the descriptors
            for SIFT, a model's output; ``list`` on the command line prints every layer with its
            output shape.
        weights: ``auto``, ``random``, a torchvision weights name or a state-dict path.
        weights_map: regex -> replacement, applied in order to every key of a weights file
            (``{"^module\\.": ""}`` drops DataParallel's prefix); ``None``: the network's own.
        arch: the torchvision classification model for ``network: torchvision`` (``vgg16``).
        pyramid_levels: K, the number of Laplacian pyramid levels.
        compactness: λ_D, weight of the compactness term; ``None`` takes the paper's value
            for the layer.
        image_size: side of the square images; ``None`` takes the network's input size.
        init_noise: standard deviation of the seeded Gaussian noise ``I_pre`` starts from
            (0 starts from mid-grey, where dense SIFT has no gradient; for ``fft`` the noise of
            the spectrum).
        optimizer: the optimiser of ``I_pre``.
        reference_images: folder of images whose features give ``N_f`` for the normalised
            error; ``None`` uses the run's own targets when there are at least two, else a few
            of scikit-image's photographs.
        tv_weights: ``(λ_α, λ_TV)`` of the ``tv`` method; ``None`` takes the defaults for the
            layer (``objective.TV_WEIGHTS``).
        lr_schedule: ``constant``, or ``cosine``: each image's learning rate falls to 1 % of
            its start along a cosine over its final phase, from the step its finest level came on
            (step 0 for the baselines, whose one phase is the run) to the Trainer's ``max_steps``;
            coarse phases run at ``coarse_lr`` (``step_scales``).
        coarse_lr: the learning rate of the coarse phases, as a share of the optimiser's (1: the
            same). Below 1 for dense SIFT: Adam moves every pixel about one rate a step, and the
            coarsest phase's smooth, consistent gradients add up to contrast a nearly flat colour
            channel never had (benchmarks/RESULTS.md, "Why blinds stalled").
        n_f: ``N_f`` itself, instead of measuring it (a chunked run gives every chunk the one of
            its first chunk, so that errors compare across the dataset).
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

    ``setup`` takes the targets from the datamodule (``set_targets`` does the same without a
    Trainer). Per image it keeps ``finest_on`` (the finest pyramid level switched on, K down to
    1) and ``switch_steps`` (global step at which each finer level came on, -1 until then); both
    are buffers, so checkpoints hold the pyramid state.
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
        coarse_lr: float = 1.0,
        network_args: dict[str, Any] | None = None,
        in_channels: int | None = None,
        input_mean: tuple[float, ...] | str | None = None,
        input_std: tuple[float, ...] | str | None = None,
        output: str | int | None = None,
        tokens: str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < coarse_lr <= 1:
            raise ValueError(
                f"coarse_lr is a share of the optimiser's learning rate, in (0, 1]; got {coarse_lr}"
            )
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"unknown lr_schedule {lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}"
            )
        if (compactness is not None and compactness < 0) or init_noise < 0:
            raise ValueError(
                f"compactness and init_noise must be >= 0; got {compactness} and {init_noise}"
            )
        # A model object is not a setting: hparams name it; with_settings reuses the object.
        self.save_hyperparameters(
            ignore=["optimizer"] if isinstance(network, str) else ["optimizer", "network"]
        )
        self.network = build_feature_network(
            network, layer, weights, arch, weights_map, network_args=network_args, in_channels=in_channels,
            input_mean=input_mean, input_std=input_std, output=output, tokens=tokens,
        )  # fmt: skip
        # A model given as an object is reused as it is by with_settings.
        self.given_network = None if isinstance(network, str) else self.network
        if self.given_network is not None:
            self.hparams["network"] = self.network.name
        self.image_size = image_size or self.network.input_size
        check_pyramid_size(self.image_size, self.image_size, pyramid_levels)
        self._check_input_size()
        self.pyramid = LaplacianPyramid(pyramid_levels)
        self.compactness = (
            compactness_for_layer(self.network.name, self.network.layer)
            if compactness is None
            else compactness
        )
        self.method = build_method(
            method,
            MethodSettings(self.network.layer, self.compactness, tv_weights, init_noise=init_noise),
        )
        self.init_noise = init_noise
        self.optimizer = optimizer
        self.reference_images = reference_images
        self.lr_schedule = lr_schedule
        self.coarse_lr = coarse_lr
        self.names: list[str] = []
        self.I_pre: nn.Parameter | None = None

    @torch.no_grad()
    def _check_input_size(self) -> None:
        """Fail now, in a sentence, when the layer cannot take images of ``image_size`` (a pooling
        layer would otherwise fail at the first step with a bare RuntimeError); else keep the shape
        of one image's features in ``feature_shape``."""
        size = self.image_size
        try:
            images = torch.zeros(
                1, self.network.in_channels, size, size, device=self.network.device
            )
            self.feature_shape = tuple(self.network(images).shape[1:])
        except (RuntimeError, AssertionError) as error:
            raise ValueError(
                f"{self.network.name} {self.network.layer} cannot take {size}x{size} px images "
                f"({str(error).splitlines()[0]}); use another --model.image_size (the network's "
                f"own is {self.network.input_size})"
            ) from None

    def with_settings(self, **changes: Any) -> FeatureInversion:
        """A fresh module with this one's settings and optimiser, ``changes`` applied (a job of a
        sweep, a chunk of a dataset)."""
        accepted = inspect.signature(FeatureInversion).parameters
        settings = {k: v for k, v in self.hparams.items() if k in accepted}
        reusable = isinstance(self.network, ModuleNetwork) or self.given_network is not None
        if reusable and not _NETWORK_SETTINGS & changes.keys():
            settings["network"] = self.network  # the same model, read at the job's layer
        return FeatureInversion(**{**settings, **changes}, optimizer=self.optimizer)

    # ----------------------------------------------------------------- targets and state
    def configure_callbacks(self) -> list[pl.Callback]:
        """A ``PyramidSwitch`` with its defaults when the Trainer has none: without it the run
        would never leave the coarsest level (nor stop when every image has converged)."""
        if any(isinstance(callback, PyramidSwitch) for callback in self.trainer.callbacks):
            return []
        return [PyramidSwitch()]

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        if isinstance(strategy, ParallelStrategy) and not isinstance(
            strategy, IndependentDDPStrategy
        ):
            raise ValueError(
                f"strategy {type(strategy).__name__} would average the gradients of I_pre and make "
                f"every process's images the same; leave --trainer.strategy auto (several devices "
                f"then use '{STRATEGY_NAME}', which inverts each process's own images)"
            )
        if self.I_pre is None:
            datamodule, world = self.trainer.datamodule, self.trainer.world_size
            rows = shard(len(datamodule.names), self.global_rank, world)
            # f(I) is computed once, on the device that will run the inversion.
            self.network.to(self.trainer.strategy.root_device)
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
        ``I_pre`` has one channel. The starting noise of a target does not depend on ``rows``.
        """
        if targets is not None and targets.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"targets are {tuple(targets.shape[-2:])} px but the model expects "
                f"{self.image_size}x{self.image_size}"
            )
        if features is not None:
            self._check_features(features)
        targets = self._as_input(targets)
        rows = torch.arange(len(names)) if rows is None else rows
        # The method makes every target's start from the seed, then this process keeps its rows.
        generator = torch.Generator().manual_seed(torch.initial_seed() % 2**63)
        shape = (len(names), self.network.in_channels, self.image_size, self.image_size)
        I_pre = self.method.initial_I_pre(shape, generator)[rows]
        self.all_names = list(names)
        # What a checkpoint of this run must match to be resumed.
        self.problem = fingerprint(
            {
                "method": self.method.name, "network": self.network.name, "arch": self.hparams.arch,
                "layer": self.network.layer, "weights": self.network.weights,
                "output": self.hparams.output, "tokens": self.hparams.tokens,
                "image_size": self.image_size, "pyramid_levels": self.pyramid.levels,
                "compactness": self.compactness,
            },
            names, targets, features,
        )  # fmt: skip
        self.names = [names[i] for i in rows.tolist()]
        count, levels, device = len(rows), self.pyramid.levels, self.device
        # Targets and f(I) come from the data on every start; checkpoints need not carry them.
        # Every process computes f of every target: N_f needs them all, and it saves a gather.
        all_features = self._features(targets) if features is None else features.float()
        self.register_buffer(
            "targets", None if targets is None else targets[rows].to(device), persistent=False
        )
        self.register_buffer("target_features", all_features[rows].to(device), persistent=False)
        self.n_f = self.hparams.n_f or self._normaliser(all_features)
        # Per-image state, all in the checkpoint: the pyramid switches and when they came on,
        # and the convergence bookkeeping of PyramidSwitch.
        # The baselines have no pyramid: every level is on from the start, so I_in = I_r.
        start = levels if self.method.coarse_to_fine else 1
        self.register_buffer("finest_on", torch.full((count,), start, device=device))
        self.register_buffer("switch_steps", torch.full((count, levels - 1), -1, device=device))
        self.register_buffer("phase_best", torch.full((count,), torch.inf, device=device))
        self.register_buffer("phase_start", torch.zeros(count, dtype=torch.long, device=device))
        self.register_buffer("last_improved", torch.zeros(count, dtype=torch.long, device=device))
        self.register_buffer("done", torch.zeros(count, dtype=torch.bool, device=device))
        self.I_pre = nn.Parameter(I_pre.to(device))

    def _check_features(self, features: Tensor) -> None:
        """Refuse features of another shape than the network gives at its layer."""
        if tuple(features.shape[1:]) != self.feature_shape:
            raise ValueError(
                f"the features are {tuple(features.shape[1:])} per target, but {self.network.name} "
                f"{self.network.layer} gives {self.feature_shape} at {self.image_size}x{self.image_size} "
                f"px: features of another network, layer or --model.image_size"
            )

    def _as_input(self, targets: Tensor | None) -> Tensor | None:
        """The targets as the network takes them: grey (the mean of R, G and B) for a grey network."""
        if targets is not None and self.network.in_channels == 1:
            return targets.mean(dim=1, keepdim=True)
        return targets

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        """f of (M, C, S, S) images, in float32 on the CPU, computed in batches of 16 on the
        network's device."""
        device = self.network.device
        return torch.cat(
            [self.network(batch.to(device)).float().cpu() for batch in images.split(16)]
        )

    def _normaliser(self, features: Tensor) -> float:
        """N_f for targets of these features (M, …): their mean pairwise distance, or the
        reference photographs' when ``reference_images`` is set or there are fewer than two."""
        if self.reference_images is None and len(features) >= 2:
            return mean_pairwise_distance(features)
        size, channels = self.image_size, self.network.in_channels
        return mean_pairwise_distance(
            self._features(reference_images(self.reference_images, size, channels))
        )

    def normaliser(self, targets: Tensor | None, features: Tensor | None = None) -> float:
        """The N_f that ``set_targets`` would measure for these targets (or their ``features``),
        computed on the network's device: a chunked run measures it once, on its first chunk."""
        return self.hparams.n_f or self._normaliser(
            self._features(self._as_input(targets)) if features is None else features.float()
        )

    def gather(self, local: Tensor) -> Tensor:
        """All processes' rows of a per-image tensor, in target order (every process must call)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return local
        return gather_rows(
            local, len(self.all_names), self.trainer.world_size, self.trainer.strategy.all_gather
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["problem"] = self.problem
        # The frozen network is rebuilt from its weights spec; keep checkpoints to I_pre and state.
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("network.")]:
            del state[key]
        if self.trainer.world_size > 1 and self.trainer.interrupted:
            # Other processes may be gone: no collective, and a checkpoint that says it is partial.
            checkpoint["partial"] = True
            return
        # Only the first process writes the file: it must hold every process's images.
        gather_checkpoint(checkpoint, len(self.names), self.gather)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get("partial"):
            raise ValueError(
                "this checkpoint was written while a multi-process run failed and holds only the "
                "first process's images: resume from last.ckpt beside it, the newest complete state"
            )
        # Checkpoints from before fingerprints have no "problem": only their image count is checked.
        mismatches = (
            differences(checkpoint["problem"], self.problem) if "problem" in checkpoint else []
        )
        if mismatches:
            raise ValueError(
                f"cannot resume: the checkpoint is of another problem ({'; '.join(mismatches)}); "
                f"resume with the checkpoint's settings and --data.images, or drop --ckpt_path "
                f"to start a new run"
            )
        state = checkpoint["state_dict"]
        total = len(self.all_names)
        if state["I_pre"].shape[0] != total:
            raise ValueError(
                f"the checkpoint holds {state['I_pre'].shape[0]} images, this run has {total}: "
                f"resume with the same --data.images"
            )
        own_checkpoint_rows(
            checkpoint, total, shard(total, self.global_rank, self.trainer.world_size)
        )
        state.update({f"network.{k}": v for k, v in self.network.state_dict().items()})

    def switch_on_next_level(self, rows: Tensor) -> None:
        """Switch on the next finer level for images ``rows`` (bool (N,)) not yet at level 1."""
        rows = rows.to(self.device) & (self.finest_on > 1)
        self.finest_on[rows] -= 1
        # Level j (1-based) coming on is recorded in column j - 1.
        self.switch_steps[rows, self.finest_on[rows] - 1] = self.global_step

    # ----------------------------------------------------------------- the model
    def image_model(self) -> tuple[Tensor, Tensor]:
        """``(I_r, I_in)``, both (N, C, S, S) in float32, whatever the Trainer's precision: ``I_r``
        is the method's image of ``I_pre`` (by default ``σ(I_pre)``)."""
        with _full_precision(self.device):
            I_r = self.method.image(self.I_pre.float())
            return I_r, self.pyramid.switched(I_r, self.finest_on)

    def losses(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(E, D, Z)`` per image (N,) for the current ``I_pre`` and pyramid state."""
        I_r, I_in = self.image_model()
        features = self.network(I_in)
        with _full_precision(self.device):
            E, D = inversion_loss(features.float(), self.target_features, I_r, I_in)
            return E, D, self.method.loss(E, D, features.float(), self.target_features, I_r)

    def training_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        E, D, Z = self.losses()
        if not torch.isfinite(Z).all():
            raise NonFiniteLossError(
                f"the loss became non-finite at step {self.global_step} for image(s) "
                f"{[self.names[i] for i in torch.nonzero(~torch.isfinite(Z)).flatten().tolist()]}; "
                f"I_pre keeps its last finite value"
            )
        self.log_dict({"loss/E": E.mean(), "loss/D": D.mean(), "loss/Z": Z.mean()})
        self.log("pyramid/level", self.finest_on.float().mean(), prog_bar=True)
        # Summing keeps the images independent: row n's gradient only depends on image n.
        return {"loss": Z.sum(), "per_image": Z.detach()}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grad = self.I_pre.grad
        # With float16 a gradient scaler owns overflow: it skips that step and lowers its scale.
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        if not scaled and not torch.isfinite(grad).all():
            raise NonFiniteLossError(
                f"the gradient of I_pre became non-finite at step {self.global_step}; "
                f"I_pre keeps its last finite value"
            )
        if self.global_step == 0 and (grad.flatten(1).abs().amax(dim=1) == 0).any():
            rank_zero_warn(
                "the gradient of I_pre is exactly zero at the start for some images: the network "
                "sees no structure in a flat image (dense SIFT does this). Start from noise with "
                "--model.init_noise 0.1"
            )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The schedule is per image (``step_scales``), applied in ``optimizer_step``.
        return self.optimizer([self.I_pre])

    def step_scales(self, step: int, max_steps: int) -> Tensor:
        """Each image's learning rate at optimiser step ``step`` as a share of the optimiser's
        (N,): ``coarse_lr`` in coarse phases; in the final phase 1 or, with ``lr_schedule:
        cosine``, a cosine from 1 down to 1 % from the step the image's finest level came on to
        ``max_steps``.

        Why per phase, not over the run: at a shallow layer of a trained network (CRAFT relu1_2)
        what is left after a short run is the image's mean brightness, which the features barely
        see and which Adam moves by about one learning rate a step, so the error at the end is set
        by the sum of the final phase's rates. A cosine over the whole run gave sLP's final phase
        the run's tail only: 200 steps, tuning set, 4.6 % against plain descent's 4.1 %; restarted
        at the final phase, 4.1 % (benchmarks/RESULTS.md, "Why relu1_2 loses").
        """
        ones = torch.ones(len(self.finest_on), device=self.device)
        final = self.finest_on == 1
        coarse = torch.full_like(ones, self.coarse_lr)
        if self.lr_schedule == "constant" or max_steps <= 0:
            return torch.where(final, ones, coarse)
        # Level 1 came on at switch_steps[:, 0]; -1 there (or no column, K = 1): final from the start.
        start = (
            self.switch_steps[:, 0].clamp(min=0)
            if self.switch_steps.shape[1]
            else torch.zeros_like(ones)
        )
        length = (max_steps - start).clamp(min=1).float()
        progress = ((step - start).float() / length).clamp(0, 1)
        cosine = 0.01 + 0.99 * 0.5 * (1 + torch.cos(torch.pi * progress))
        return torch.where(final, cosine, coarse)

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """The optimiser's step, each image's update then scaled by ``step_scales``: exactly a
        learning rate per image for optimisers whose step is proportional to it (Adam, SGD)."""
        # The scales depend on the step and the switches only, which the optimiser's step does not
        # change: known before it, so a step at the full rate copies nothing.
        scales = self.step_scales(self.global_step, self.trainer.max_steps)
        if bool((scales == 1).all()):
            optimizer.step(closure=optimizer_closure)
            return
        before = self.I_pre.detach().clone()
        optimizer.step(closure=optimizer_closure)
        with torch.no_grad():
            self.I_pre.copy_(before + _per_row(scales, before) * (self.I_pre - before))

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, metric: NormalizedError | None = None) -> dict[str, Tensor]:
        """Per image, on the current ``I_r``: ``feature_error = ‖f(I_r) − f(I)‖₂``,
        ``relative_error`` (÷ ‖f(I)‖₂), ``normalized_error`` (÷ N_f), ``psnr`` and ``ssim``.

        ``metric``, when given, is updated with the same features (its ``compute()`` then gives
        the mean over every process's images).
        """
        I_r, _ = self.image_model()
        features = self.network(I_r).float()
        if metric is not None:
            metric.update(features, self.target_features)
        error = feature_distance(features, self.target_features)
        reference = self.target_features.flatten(1).norm(dim=1)
        return {
            "feature_error": error,
            "relative_error": error / reference,
            "normalized_error": error / self.n_f,
            **(image_quality(I_r, self.targets) if self.targets is not None else {}),
        }


def _per_row(values: Tensor, like: Tensor) -> Tensor:
    """(N,) values shaped to broadcast over ``like`` (N, …), in its dtype."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _full_precision(device: torch.device):  # noqa: ANN202
    """Turn autocast off: the image model and the losses stay in float32 under mixed precision."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()
