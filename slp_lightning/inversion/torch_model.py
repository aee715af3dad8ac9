"""The inversion's maths as a plain ``nn.Module``: the image model, the losses and the evaluation,
usable without Lightning (``lightning_model.FeatureInversion`` runs it in a Trainer).

    inversion = Inversion(network, build_method("slp", settings), pyramid_levels=6, image_size=224)
    inversion.set_targets(targets, inversion.features(targets), I_pre, n_f=...)
    schedule = SwitchSchedule(len(targets), 6)
    E, D, Z = inversion.losses(schedule.finest_on)

A ``threat.Threat`` makes it an attack on defended features: the victim's network makes the
features, its defence what the attacker observes (``observe``), and ``network`` is the attacker's.
An ``objectives.Objective`` makes it a feature visualisation: no targets, and what is minimised
is minus the objective of each row's features (``set_objective``), through ``transforms``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

from slp_lightning.errors import ArgumentError
from slp_lightning.inversion.threat import Threat
from slp_lightning.maths.losses import compactness_distance, feature_distance
from slp_lightning.maths.metrics import NormalizedError, image_quality
from slp_lightning.maths.pyramid import LaplacianPyramid, check_pyramid_size
from slp_lightning.maths.transforms import Transforms
from slp_lightning.methods import InversionMethod
from slp_lightning.networks import FeatureNetwork
from slp_lightning.objectives import Objective


class Inversion(nn.Module):
    """Invert ``network``'s features of square ``image_size`` images with ``method`` and a
    ``pyramid_levels``-level Laplacian pyramid. ``set_targets`` gives it the targets and creates
    ``I_pre``, its only parameter; the frozen network's own parameters never train. ``threat``
    (default: none) says where the features come from and what the attacker knows.

    Attributes, once the targets are set: ``I_pre`` (N, C, S, S), ``targets`` (the same shape, or
    ``None`` when only features are known), ``target_features`` f(I) (N, …) of the victim's
    network, ``observed`` (N, …) what the attacker inverts (``target_features`` itself without a
    defence) and ``n_f``, the N_f that normalises the feature error.
    """

    def __init__(
        self, network: FeatureNetwork, method: InversionMethod, pyramid_levels: int, image_size: int,
        threat: Threat | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        check_pyramid_size(image_size, image_size, pyramid_levels)
        self.network = network
        self.method = method
        self.pyramid = LaplacianPyramid(pyramid_levels)
        self.image_size = image_size
        self.threat = threat or Threat()
        if self.threat.victim is not None:
            self.victim_network = self.threat.victim  # a submodule: it moves with the inversion
        #: one target's features, as the victim's network gives them (a features file holds these)
        self.feature_shape = self._feature_shape(self.victim)
        self.observed_shape = self.threat.check_shapes(
            self._feature_shape(network), self.feature_shape
        )
        self.I_pre: nn.Parameter | None = None
        self.n_f: float | None = None
        #: a visualisation's objective (``None``: the targets' features are inverted)
        self.objective: Objective | None = None
        #: what the image goes through before the network (``transforms.Transforms``), or ``None``
        self.transforms: Transforms | None = None
        #: λ_D per image of a batch of jobs (``Z = E + λ_D·D`` each), or ``None``: the method's
        self.register_buffer("row_compactness", None, persistent=False)

    @property
    def victim(self) -> FeatureNetwork:
        """The network whose features are sent: the victim's, or ``network`` itself."""
        return self.threat.victim or self.network

    @torch.no_grad()
    def _feature_shape(self, network: FeatureNetwork) -> tuple[int, ...]:
        """The shape of one image's features; fails now, in a sentence, when the layer cannot
        take images of ``image_size`` (a pooling layer would otherwise fail at the first step
        with a bare RuntimeError)."""
        size = self.image_size
        try:
            return tuple(
                network(
                    torch.zeros(1, network.in_channels, size, size, device=network.device)
                ).shape[1:]
            )
        except (RuntimeError, AssertionError) as error:
            raise ArgumentError(
                f"{network.name} {network.layer} cannot take {size}x{size} px images "
                f"({str(error).splitlines()[0]}); use another image_size (the network's own is "
                f"{network.input_size})",
                "FeatureInversion.image_size",
            ) from None

    def take(
        self, targets: Tensor | None, features: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Targets (M, 3, S, S) in [0, 1] as the network takes them (``as_input``) and f of
        every target (``features`` when given); refuses targets of another size than
        ``image_size`` and features of another shape than the network gives."""
        size = self.image_size
        if targets is not None and targets.shape[-2:] != (size, size):
            raise ArgumentError(
                f"targets are {tuple(targets.shape[-2:])} px but image_size is {size}",
                "FeatureInversion.image_size",
            )
        if features is not None:
            self.check_features(features)
        targets = self.as_input(targets)
        return targets, self.features(targets) if features is None else features.float()

    def check_features(self, features: Tensor) -> None:
        """Refuse features (M, …) of another shape than the network gives at its layer."""
        if tuple(features.shape[1:]) != self.feature_shape:
            network, size = self.victim, self.image_size
            raise ArgumentError(
                f"the features are {tuple(features.shape[1:])} per target, but {network.name} "
                f"{network.layer} gives {self.feature_shape} at {size}x{size} px: features of "
                f"another network, layer or image_size",
                "FeatureInversion.image_size",
            )

    def as_input(self, images: Tensor | None) -> Tensor | None:
        """Images (M, 3, S, S) as the network takes them: grey (the mean of R, G and B) for a grey
        network."""
        if images is not None and self.network.in_channels == 1:
            return images.mean(dim=1, keepdim=True)
        return images

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """f of (M, C, S, S) images by the victim's network, in float32 on the CPU, computed in
        batches of 16 on the network's device."""
        device = self.victim.device
        return torch.cat(
            [self.victim(batch.to(device)).float().cpu() for batch in images.split(16)]
        )

    @torch.no_grad()
    def calibrate(self, references: Tensor) -> None:
        """Let an attacker who knows the defence learn what its observations stand for from its
        own network's features of the natural images ``references`` (M, C, S, S) in [0, 1]
        (``defences.base.Defence.calibrate``); nothing for one who does not."""
        if self.threat.aware and self.threat.defence.defends:
            device = self.network.device
            images = self.as_input(references)
            own = torch.cat(
                [self.network(batch.to(device)).float().cpu() for batch in images.split(16)]
            )
            self.threat.defence.calibrate(own)

    def observe(self, features: Tensor, names: list[str], seed: int) -> Tensor:
        """What the attacker observes of the victim's ``features`` (N, …) of targets ``names``
        in a run of ``seed``: ``features`` themselves without a defence."""
        return self.threat.observe(features, names, seed)

    def set_objective(self, objective: Objective, I_pre: Tensor) -> None:
        """Make it a visualisation of ``objective`` (one row per ``I_pre`` row): no targets."""
        self.objective = objective
        for name in ("targets", "target_features", "observed"):
            self.register_buffer(name, None, persistent=False)
        self.n_f = None
        self.I_pre = nn.Parameter(I_pre)

    def set_targets(
        self, targets: Tensor | None, features: Tensor, I_pre: Tensor, n_f: float,
        observed: Tensor | None = None,
    ) -> None:  # fmt: skip
        """Fix the problem: ``targets`` (N, C, S, S) in [0, 1] as the network takes them
        (``as_input``; ``None``: only their ``features`` are known), their features f(I),
        the start of ``I_pre``, N_f and what the attacker ``observed`` (``observe``; ``None``:
        the features themselves)."""
        device = I_pre.device
        # Targets and f(I) come from the data on every start; checkpoints need not carry them.
        self.register_buffer(
            "targets", None if targets is None else targets.to(device), persistent=False
        )
        self.register_buffer("target_features", features.float().to(device), persistent=False)
        observed = self.target_features if observed is None else observed.float().to(device)
        self.register_buffer("observed", observed, persistent=False)
        self.n_f = n_f
        self.I_pre = nn.Parameter(I_pre)

    def reconstruction(self, I_pre: Tensor | None = None) -> Tensor:
        """``I_r``, the method's image of ``I_pre`` (by default ``σ(I_pre)``), (N, C, S, S) in
        float32 whatever the precision around it; of the parameter unless ``I_pre`` is given."""
        I_pre = self.I_pre if I_pre is None else I_pre
        with full_precision(I_pre.device):
            return self.method.image(I_pre.float())

    def images(
        self, finest_on: Tensor, I_pre: Tensor | None = None, coarsest: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(I_r, I_in)``: ``I_in`` is ``I_r``'s pyramid recomposed with levels ``finest_on[n]``
        to K of image n switched on (``I_pre`` as in ``reconstruction``; ``coarsest`` as in
        ``LaplacianPyramid.switched``)."""
        I_r = self.reconstruction(I_pre)
        with full_precision(I_r.device):
            return I_r, self.pyramid.switched(I_r, finest_on, coarsest)

    def losses(
        self, finest_on: Tensor, coarsest: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(E, D, Z)`` per image (N,) for the current ``I_pre`` with levels ``finest_on`` on
        (the largest of which is ``coarsest``, when known)."""
        images = self.images(finest_on, coarsest=coarsest)
        return self._losses(images, self.observed, self.objective, self.row_compactness)

    def losses_of(
        self, I_pre: Tensor, rows: Tensor, finest_on: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(E, D, Z)`` of the images ``rows`` (bool (N,)) alone, as if their rows of ``I_pre``
        were ``I_pre`` (M, …); ``finest_on`` (N,) as in ``losses``."""
        images = self.images(finest_on[rows], I_pre)
        if self.objective is not None:
            return self._losses(images, None, self.objective.subset(rows))
        weights = None if self.row_compactness is None else self.row_compactness[rows]
        return self._losses(images, self.observed[rows], None, weights)

    def _losses(
        self, images: tuple[Tensor, Tensor], observed: Tensor | None, objective: Objective | None,
        compactness: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        I_r, I_in = images
        features = self.network(I_in if self.transforms is None else self.transforms(I_in))
        with full_precision(I_r.device):
            if objective is not None:  # a visualisation: minus the objective
                E = objective.loss(features.float())
            else:
                E = self.threat.data_term(features.float(), observed)
            D = compactness_distance(I_r, I_in)
            if compactness is not None:  # a batch of jobs: slp's loss with each image's λ_D
                return E, D, E + compactness * D
            return E, D, self.method.loss(E, D, observed, I_r)

    @torch.no_grad()
    def evaluate(self, metric: NormalizedError | None = None) -> dict[str, Tensor]:
        """Per image, on the current ``I_r``: ``feature_error = ‖f(I_r) − y‖₂`` against what the
        attacker observed (y = f(I) without a defence; f the attacker's network),
        ``relative_error`` (÷ ‖y‖₂), ``normalized_error`` (÷ N_f), with a threat
        ``victim_normalized_error`` (‖f_victim(I_r) − f_victim(I)‖₂ ÷ N_f: against the clean
        features), and with targets ``psnr``, ``ssim`` and ``hf_ratio``.

        ``metric``, when given, is updated with the same features (its ``compute()`` then gives
        the mean over every process's images).
        """
        I_r = self.reconstruction()
        if self.objective is not None:
            return {"activation": self.objective.activation(self.network(I_r).float())}
        features = self.threat.comparable(self.network(I_r).float(), self.observed)
        if metric is not None:
            metric.update(features, self.observed)
        error = feature_distance(features, self.observed)
        reference = self.observed.flatten(1).norm(dim=1)
        victim = {}
        if not self.threat.trivial:
            clean = feature_distance(self.victim(I_r).float(), self.target_features)
            victim = {"victim_normalized_error": clean / self.n_f}
        return {
            "feature_error": error,
            "relative_error": error / reference,
            "normalized_error": error / self.n_f,
            **victim,
            **(image_quality(I_r, self.targets) if self.targets is not None else {}),
        }


def full_precision(device: torch.device) -> AbstractContextManager:
    """Autocast off: the image model and the losses stay in float32 under mixed precision."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()
