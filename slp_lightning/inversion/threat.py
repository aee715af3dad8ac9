"""The threat model of an inversion: the victim's network makes the features, a defence turns
them into what leaves the client, and the attacker inverts what it observes through its own
network (the victim's, or a stand-in), knowing the defence or not. Plain PyTorch:
``torch_model.Inversion`` holds one."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from slp_lightning.defences import Defence, NoDefence, observe_targets
from slp_lightning.errors import ArgumentError
from slp_lightning.inversion.utility import task_agreement
from slp_lightning.maths.losses import feature_distance
from slp_lightning.networks import FeatureNetwork, ModuleNetwork, build_feature_network


@dataclass
class Threat:
    """What the attacker observes and knows.

    Attributes:
        defence: what the client does to the features before they leave it (``defences``).
        aware: whether the attacker knows the defence: its data term is then the defence's
            ``discrepancy``, else the distance to the observation as it is.
        victim: the network whose features are sent, when the attacker inverts through another
            one (a stand-in: other weights, another model); ``None``: the attacker's own.
    """

    defence: Defence = field(default_factory=NoDefence)
    aware: bool = True
    victim: FeatureNetwork | None = None
    #: an audit (a defence was named, ``none`` too): the task's utility is measured and recorded
    audited: bool = False

    @property
    def trivial(self) -> bool:
        """No defence, and the attacker has the victim's network: the plain inversion."""
        return not self.defence.defends and self.victim is None

    def check_shapes(self, attacker: tuple[int, ...], victim: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one target's observation, for features of the ``victim``'s shape;
        refuses a threat whose attacker cannot compare its features (of shape ``attacker``)
        with it."""
        self.defence.check_features(victim)
        try:  # a defence of the user's own may not take these features
            sent = self.defence.observe(torch.zeros(1, *victim), torch.Generator())
            own = self.defence.comparable(torch.zeros(1, *attacker)) if self.aware else None
        except (RuntimeError, ValueError, TypeError) as error:
            raise ArgumentError(
                f"defence {self.defence.spec} fails on features of shape {victim} "
                f"({str(error).splitlines()[0]})",
                "FeatureInversion.defence",
            ) from None
        observed = tuple(sent.shape[1:])
        compared = attacker if own is None else tuple(own.shape[1:])
        if compared == observed:
            return observed
        if not self.aware and observed != victim:
            raise ArgumentError(
                f"defence {self.defence.spec} sends features of shape {observed} for {victim}: an "
                f"attacker who does not know it cannot compare its own with them; give defence_aware "
                f"true (it applies the defence to its own features)",
                "FeatureInversion.defence_aware",
            )
        raise ArgumentError(
            f"the attacker's network gives features of shape {attacker}, the victim's {victim} "
            f"(observed as {observed}): a stand-in must give features of the victim's shape",
            "FeatureInversion.attacker_network",
        )

    def observe(self, features: Tensor, names: list[str], seed: int) -> Tensor:
        """What the attacker observes of the victim's ``features`` (N, …) of targets ``names``
        in a run of ``seed`` (``defences.observe_targets``)."""
        return observe_targets(self.defence, features, names, seed)

    def data_term(self, features: Tensor, observed: Tensor) -> Tensor:
        """``E`` per target (N,): how far the attacker's ``features`` are from ``observed``, as
        the attacker can tell."""
        if self.aware:
            return self.defence.discrepancy(features, observed)
        return feature_distance(features, observed)

    def comparable(self, features: Tensor, observed: Tensor) -> Tensor:
        """The attacker's ``features`` where ``observed`` are: the defence applied to them when it
        changes the features' shape (only an aware attacker can do that), else as they are."""
        if features.shape[1:] != observed.shape[1:]:
            return self.defence.comparable(features)
        return features

    def utility(
        self, victim: FeatureNetwork, images: Tensor | None, clean: Tensor, observed: Tensor
    ) -> tuple[Tensor | None, str | None]:
        """The task's top-1 agreement per target with the ``observed`` features put back
        (``utility.task_agreement``) and what it means, in an audit; ``(None, None)`` else."""
        if not self.audited:
            return None, None
        return task_agreement(victim, images, clean, observed)

    def describe(self, attacker: FeatureNetwork) -> dict[str, Any] | None:
        """The threat as ``results.json`` and the checkpoints' fingerprints record it (``None``:
        the plain inversion, as before there was a threat model)."""
        if self.trivial and not self.audited:
            return None
        return {
            **self.defence.describe(),
            "spec": self.defence.spec,
            "defence_aware": self.aware,
            "attacker_network": f"{attacker.name} {attacker.layer} ({attacker.weights})",
            "victim_network": None
            if self.victim is None
            else f"{self.victim.name} {self.victim.layer} ({self.victim.weights})",
        }


def stand_in(
    victim: FeatureNetwork, spec: Any, layer: str | None, weights: str | None,
    same_spec: Any, same_layer: str | None, same_options: dict[str, Any],
) -> FeatureNetwork | None:  # fmt: skip
    """The attacker's own network when it is not the victim's (``None``: it is): ``spec``
    (default ``same_spec``, the victim's) read at ``layer`` (default the victim's
    ``same_layer``) with ``weights`` (default: the victim's for its own spec, else ``auto``).
    The victim's own spec is built with the victim's ``same_options`` (``arch``, ``weights``,
    input convention, …); a model the victim was given as (an object) is copied before it gets
    other weights."""
    if spec is None and layer is None and weights is None:
        return None
    own = spec is None
    options = dict(same_options) if own else {}
    if weights is not None:
        options["weights"] = weights
    source = same_spec if own else spec
    if own and weights is not None and not isinstance(source, str):
        if not isinstance(victim, ModuleNetwork):
            raise ArgumentError(
                f"{victim.name} was given built: a stand-in with other weights needs it by name "
                f"(network) or as a model read at a module path",
                "FeatureInversion.attacker_weights",
            )
        source = copy.deepcopy(victim.model)  # its weights are reset or loaded: not the victim's
        options = {k: v for k, v in options.items() if k not in ("arch", "network_args")}  # built
    return build_feature_network(source, same_layer if layer is None else layer, **options)
