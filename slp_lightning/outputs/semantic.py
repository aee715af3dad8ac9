"""Semantic fidelity: does a reconstruction still show its target's class to an independent
classifier?

Matching a classifier's features fools that classifier: the inverted network's own label of a
reconstruction proves little. An *evaluator* (``evaluators``), another trained classifier, labels
the target and the reconstruction; the scores compare the two (``semantic_scores``, plain tensors
in and out), and ``as_results`` puts them in ``results.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from slp_lightning.outputs.evaluators import Evaluator

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


def label_scores(
    evaluator: Evaluator, images: Tensor, intended: Tensor, k: int = TOP_K, batch_size: int = 16
) -> dict[str, Tensor]:
    """What an independent classifier sees in visualisations ``images`` (N, C, H, W) in [0, 1]:
    per row (N,) ``recon_class`` and ``recon_p`` (its top-1 and probability), ``top5`` (N, k) its
    top-k classes, and for the class each row maximises (``intended`` (N,), -1 for none) whether
    it is the top-1 (``intended_top1``) or among the top-k (``intended_top5``), as 0/1 (NaN
    where there is none): the visualisation *transfers* to that classifier."""
    logits, _ = evaluator(images, batch_size)
    p = logits.float().softmax(1)
    top = p.topk(min(k, p.shape[1]), dim=1).indices
    intended = intended.to(top.device)
    has = intended >= 0
    nan = torch.full_like(intended, float("nan"), dtype=torch.float32)
    return {
        "recon_class": top[:, 0], "recon_p": p.max(dim=1).values, "top5": top,
        "intended_top1": torch.where(has, (top[:, 0] == intended).float(), nan),
        "intended_top5": torch.where(has, (top == intended[:, None]).any(1).float(), nan),
        "classes": torch.full_like(intended, p.shape[1]),
    }  # fmt: skip


def label_results(evaluator: Evaluator, scores: dict[str, Tensor]) -> dict[str, Any]:
    """``label_scores`` as ``results.json`` holds them: ``images``, a dict per row; ``means``
    (``mean_transfer_top1``, ``mean_transfer_top5`` over the rows that maximise a class);
    ``about``, the classifier."""
    count = len(scores["recon_class"])
    classes = int(scores["classes"][0]) if count else 0
    images = []
    for row in range(count):
        intended, top1 = scores["intended_top1"][row], int(scores["recon_class"][row])
        images.append({
            "top1": {"class": top1, "name": evaluator.category(top1, classes), "p": float(scores["recon_p"][row])},
            "top5": [evaluator.category(int(c), classes) for c in scores["top5"][row]],
            "intended_top1": None if intended.isnan() else bool(intended),
            "intended_top5": None if intended.isnan() else bool(scores["intended_top5"][row]),
        })  # fmt: skip

    def mean(key: str) -> float | None:
        values = scores[key][~scores[key].isnan()]
        return float(values.double().mean()) if len(values) else None

    about = {"classifier": evaluator.name, "weights": evaluator.weights, "top_k": TOP_K}
    return {
        "images": images,
        "means": {
            "mean_transfer_top1": mean("intended_top1"),
            "mean_transfer_top5": mean("intended_top5"),
        },
        "about": about,
    }
