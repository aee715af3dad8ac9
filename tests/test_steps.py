"""A step of the inversion reads nothing from the device: the guards, the switching rule and the
learning-rate multiples stay on it, and the host reads them every ``check_every_n_steps``."""

from __future__ import annotations

import sys
from collections import Counter

import lightning.pytorch as pl
import pytest
import torch

from slp_lightning import FeatureInversion, PyramidSwitch
from slp_lightning.data.targets import _Clock

from helpers import slow_but

CONVERSIONS = ("__bool__", "item", "tolist", "__float__", "__int__", "__index__")


class Steps(pl.Callback):
    """Which step the conversions counted belong to."""

    def __init__(self) -> None:
        self.step = -1

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.step = trainer.global_step

    def on_train_end(self, *args: object) -> None:
        self.step = -1


def fit(model: FeatureInversion, steps: int, *callbacks: pl.Callback, every: int = 5) -> None:
    data = pl.LightningDataModule.from_datasets(train_dataset=_Clock(steps), batch_size=None)
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=50,
        callbacks=[PyramidSwitch(check_every_n_steps=every, min_steps=2, patience=2), *callbacks],
    )  # fmt: skip
    trainer.fit(model, datamodule=data)


@pytest.mark.parametrize("method", ["slp", "pixel"])
def test_a_step_reads_nothing_from_the_device_between_two_checks(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tensor-to-Python conversion the tool makes, counted per step: none but on the steps
    the host reads (every 5th, and the last)."""
    model = FeatureInversion(
        method=method, layer="conv1", weights="random", image_size=32, pyramid_levels=3
    )
    model.set_targets(torch.rand(2, 3, 32, 32), ["a", "b"])
    steps, counts = Steps(), Counter()
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def counted(
            tensor: torch.Tensor, *args: object, _original: object = original, **kwargs: object
        ) -> object:
            caller = sys._getframe(1).f_code.co_filename  # noqa: SLF001 - who converts
            if "slp_lightning" in caller:
                counts[steps.step] += 1
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    fit(model, 20, steps)
    read = {s for s in range(20) if s % 5 == 0 or s == 19}
    assert {s for s in counts if s >= 0} <= read, counts
    assert any(counts[s] for s in read)  # the reads are there, and counted
    if method == "slp":  # the schedule still runs: the coarse phases switched
        assert int(model.schedule.finest_on.max()) < 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_step_synchronises_the_gpu_between_two_checks() -> None:
    model = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3)
    model.set_targets(torch.rand(2, 3, 64, 64), ["a", "b"])

    class Strict(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
            reads = trainer.global_step % 5 == 0 or trainer.global_step >= 18
            torch.cuda.set_sync_debug_mode(0 if reads or trainer.global_step < 2 else "error")

        def on_train_end(self, *args: object) -> None:
            torch.cuda.set_sync_debug_mode(0)

    try:
        fit(model.cuda(), 20, Strict())
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_a_non_finite_gradient_between_checks_is_never_applied_and_named_at_the_next() -> None:
    model = FeatureInversion(layer="conv1", weights="random", image_size=32, pyramid_levels=3)
    model.set_targets(torch.rand(2, 3, 32, 32), ["a", "b"])

    class Poison(pl.Callback):
        def on_before_optimizer_step(
            self, trainer: pl.Trainer, module: FeatureInversion, optimizer: object
        ) -> None:
            if trainer.global_step == 7:
                module.inversion.I_pre.grad[1].fill_(float("nan"))

    from slp_lightning.maths.guards import NonFiniteLossError

    with pytest.raises(
        NonFiniteLossError,
        match=r"gradient of I_pre became non-finite at step 7 for image\(s\) \['b'\]",
    ):
        fit(model, 20, Poison())
    assert (
        model.global_step == 10 and torch.isfinite(model.inversion.I_pre).all()
    )  # read at step 10


@pytest.mark.parametrize("method", slow_but(["slp", "pixel"], "slp"))
def test_several_steps_per_call_give_the_same_images_and_switches(method: str) -> None:
    results = {}
    for calls in (1, 7):
        model = FeatureInversion(method=method, layer="conv1", weights="random", image_size=32,
                                 pyramid_levels=3, steps_per_call=calls)  # fmt: skip
        model.set_targets(
            torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), ["a", "b"]
        )
        fit(model, 30, every=1)
        results[calls] = (
            model.inversion.I_pre.detach(),
            model.schedule.switch_steps,
            model.global_step,
        )
    (one, switches, steps), (seven, switches_7, steps_7) = results[1], results[7]
    assert torch.equal(one, seven) and torch.equal(switches, switches_7) and steps == steps_7 == 30
    if method == "slp":
        assert (switches[:, 0] > 0).all()  # it switched, at the same steps


def test_steps_per_call_is_a_count() -> None:
    with pytest.raises(ValueError, match="steps_per_call must be an integer >= 1; got 0"):
        FeatureInversion(weights="random", steps_per_call=0)
