"""Inversion methods behind one registry: the built-in three, and one added by a user."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor

from slp_lightning import FeatureInversion, TargetImages
from slp_lightning.methods import METHODS, InversionMethod, MethodSettings, build_method
from slp_lightning.sweep import Sweep


class SquaredError(InversionMethod):
    """A baseline as a user would add it: plain descent on E², every level on."""

    name = "squared"

    def loss(self, E: Tensor, D: Tensor, features: Tensor, target: Tensor, I_r: Tensor) -> Tensor:
        return E.pow(2)


def fit(method: str, steps: int = 20) -> FeatureInversion:
    model = FeatureInversion(method=method, layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    pl.seed_everything(0, verbose=False)
    run = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)  # fmt: skip
    run.fit(model, TargetImages("skimage:astronaut", image_size=64))
    return model


def test_registry_names_its_classes_and_refuses_unknown_names() -> None:
    assert list(METHODS) == ["slp", "pixel", "tv"]
    assert [METHODS[m].coarse_to_fine for m in METHODS] == [True, False, False]
    settings = MethodSettings(layer="conv5", compactness=0.1)
    assert build_method("tv", settings).weights == (1e-3, 1e-1)  # conv5's defaults
    with pytest.raises(ValueError, match="unknown method 'magic'; valid methods: slp, pixel, tv"):
        build_method("magic", settings)


def test_losses_of_the_built_in_methods() -> None:
    E, D = torch.tensor([2.0, 3.0]), torch.tensor([1.0, 0.0])
    settings = MethodSettings(layer="conv2", compactness=0.5)
    assert build_method("slp", settings).loss(E, D, None, None, None).tolist() == [2.5, 3.0]
    assert build_method("pixel", settings).loss(E, torch.zeros(2), None, None, None).tolist() == [2.0, 3.0]


def test_a_method_added_to_the_registry_runs_and_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METHODS, "squared", SquaredError)
    model = fit("squared")
    assert model.method.name == "squared" and model.finest_on.tolist() == [1]  # every level on
    assert model.evaluate()["normalized_error"].item() < 1.5
    jobs = Sweep(methods=["slp", "squared"], compactness=[0.01, 0.1]).jobs("slp", "alexnet", "conv2")
    # λ_D is swept for the coarse-to-fine method only
    assert [(j.method, j.compactness) for j in jobs] == [("slp", 0.01), ("slp", 0.1), ("squared", None)]


def test_a_plain_trainer_runs_the_whole_coarse_to_fine_schedule() -> None:
    # No PyramidSwitch given: the module brings one, so every level comes on.
    model = fit("slp", steps=40)
    assert model.finest_on.tolist() == [1]
    assert (model.switch_steps > 0).all()
