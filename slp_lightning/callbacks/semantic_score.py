"""The semantic score of a run's reconstructions, by an independent classifier."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from slp_lightning.errors import ArgumentError, check_range
from slp_lightning.networks.module_network import Convention
from slp_lightning.networks.weights import RANDOM
from slp_lightning.outputs import evaluators, semantic


class SemanticScore(Callback):
    """Semantic fidelity at the end of a run: an independent classifier's top-1 class of each
    target and of its reconstruction ``I_r``, whether they agree, whether the target's class is in
    the reconstruction's top 5, the probability the reconstruction keeps of it, and the distance
    of their penultimate features (``slp_lightning.outputs.semantic``), in ``results.json``.

    The inverted network's own label of its reconstruction proves little (the inversion matched
    its features); another classifier says whether the image still shows the class. The images
    are scored at the inversion's size. With several processes each scores its own images and
    the scores are gathered. Without target images (``--data.features``) nothing is scored.

    Args:
        classifier: ``None`` (nothing computed), ``auto`` (EfficientNet-Lite0 for an inverted
            MobileNetV2, else MobileNetV2), ``mobilenet_v2``, ``efficientnet_lite0``,
            ``torchvision`` (with ``arch``), or any network spec or ``nn.Module`` giving logits.
        arch: the architecture of ``classifier: torchvision``.
        logits_layer: the module path of a network's logits (``None``: its output).
        features_layer: the module path of its penultimate features (a shortcut's own by
            default; none for other networks: no feature distance).
        weights: the classifier's weights (``auto``: its own; a path: a state dict).
        network_args: the keyword arguments of a classifier's class or factory.
        input_mean: its input convention (``build_feature_network``'s).
        input_std: its input convention.
        batch_size: images per forward of the classifier.
    """

    def __init__(
        self,
        classifier: str | nn.Module | None = None,
        arch: str | None = None,
        logits_layer: str | None = None,
        features_layer: str | None = None,
        weights: str = "auto",
        network_args: dict[str, Any] | None = None,
        input_mean: Convention = None,
        input_std: Convention = None,
        batch_size: int = 16,
    ) -> None:
        check_range(batch_size, "SemanticScore.batch_size", low=1, integer=True)
        why = evaluators.unavailable(classifier) if classifier != evaluators.AUTO else None
        if why is not None:  # named: the user asked for it
            raise ArgumentError(f"classifier {why}", "SemanticScore.classifier")
        self.classifier = classifier
        self.settings = {
            "arch": arch, "logits_layer": logits_layer, "features_layer": features_layer, "weights": weights,
            "network_args": network_args, "input_mean": input_mean, "input_std": input_std,
        }  # fmt: skip
        self.batch_size = batch_size
        self._evaluators: dict[str, evaluators.Evaluator] = {}
        self._skipped: set[str] = set()  # auto's evaluators that are not installed, said once
        #: ``semantic.as_results`` of the last run (on the first process), or ``None``
        self.results: dict | None = None
        self.final_scores: dict[str, Tensor] | None = None
        self._measured = False

    def evaluator(self, inverted: nn.Module) -> evaluators.Evaluator | None:
        """The classifier for a run of ``inverted`` (built once), ``None`` when none is set or its
        weights fell back to random (a loud warning has said so)."""
        classifier = self.classifier
        if classifier is None:
            return None
        if classifier == evaluators.AUTO:
            classifier = evaluators.default_classifier(inverted)
            why = evaluators.unavailable(classifier)
            if why is not None:  # the default: the run goes on without the semantic score
                if classifier not in self._skipped:
                    rank_zero_warn(f"no semantic score: the evaluator auto picks, {why}")
                self._skipped.add(classifier)
                return None
        key = classifier if isinstance(classifier, str) else "module"
        if key not in self._evaluators:
            self._evaluators[key] = evaluators.build_evaluator(classifier, **self.settings)
        evaluator = self._evaluators[key]
        return None if evaluator.weights == RANDOM else evaluator

    def scores(self, pl_module: pl.LightningModule) -> dict[str, Tensor] | None:
        """``semantic.evaluate``'s scores of every process's current ``I_r``, in target order
        (every process must call: they are gathered); ``None`` without a classifier or targets."""
        inversion = pl_module.inversion
        evaluator = self.evaluator(inversion.network)
        if evaluator is None or inversion.targets is None:
            return None
        evaluator.to(pl_module.device)
        I_r = inversion.reconstruction().detach()
        scores = semantic.evaluate(evaluator, inversion.targets, I_r, batch_size=self.batch_size)
        return {key: pl_module.gather(value) for key, value in scores.items()}

    def visual_labels(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict | None:
        """A visualisation's labels by the classifier (``semantic.label_results``) and whether
        each row shows the class it maximises, on the first process (every process must call:
        the scores are gathered); ``None`` without a classifier."""
        inversion = pl_module.inversion
        evaluator = self.evaluator(inversion.network)
        if evaluator is None:
            return None
        evaluator.to(pl_module.device)
        intended = [
            next(iter(inversion.objective.classes(row)), -1)
            for row in range(len(inversion.objective))
        ]
        scores = semantic.label_scores(
            evaluator,
            inversion.reconstruction().detach(),
            torch.tensor(intended),
            batch_size=self.batch_size,
        )
        scores = {key: pl_module.gather(value) for key, value in scores.items()}
        return semantic.label_results(evaluator, scores) if trainer.is_global_zero else None

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict | None:
        """Score every process's final ``I_r``, once per run (every process must call: the
        scores are gathered); on the first process, ``semantic.as_results`` of every image, else
        ``None``. The ``OutputWriter`` calls it to put the scores in ``results.json``;
        ``final_scores`` then holds them as tensors, in target order, on every process."""
        if self._measured:
            return self.results
        self._measured = True
        self.final_scores = self.scores(pl_module)
        if self.final_scores is not None and trainer.is_global_zero:
            self.results = semantic.as_results(
                self.evaluator(pl_module.inversion.network), self.final_scores
            )
        return self.results

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.results, self.final_scores, self._measured = None, None, False
        self.evaluator(
            pl_module.network
        )  # a missing package or a bad spec fails now, not at the end

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.measure(trainer, pl_module)
