import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning import FeatureInversion, OutputWriter, PyramidSwitch, TargetImages
from slp_lightning.callbacks import SwitchListener
from slp_lightning.inversion import NonFiniteLossError


class Recorder(Callback):
    """Keeps every step's per-image loss and pyramid state."""

    def __init__(self) -> None:
        self.losses, self.levels, self.start = [], [], None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = (trainer.global_step, pl_module.finest_on.clone())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["per_image"].clone())
        self.levels.append(pl_module.finest_on.clone())


def make_run(root: Path, images: str, *, steps: int, layer: str = "conv2", callbacks=(), **switch):
    model = FeatureInversion(
        layer=layer, weights="random", pyramid_levels=3, image_size=64, compactness=0.01
    )
    data = TargetImages(images, image_size=64)
    switch = {"min_steps": 5, "patience": 5, "max_steps_per_level": 15, **switch}
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[PyramidSwitch(**switch), OutputWriter(), *callbacks],
        logger=TensorBoardLogger(root, name="run"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )
    return model, data, trainer


def test_the_only_parameter_is_I_pre_one_row_per_image(tmp_path: Path, photos: Path) -> None:
    model, data, trainer = make_run(tmp_path, str(photos), steps=1)
    trainer.fit(model, data)
    trainable = [(n, tuple(p.shape)) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [("I_pre", (3, 3, 64, 64))]
    optimised = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]
    assert len(optimised) == 1 and optimised[0] is model.I_pre
    assert all(p.grad is None for p in model.network.parameters())


def test_loss_decreases_and_levels_switch_on_coarse_to_fine(tmp_path: Path, photos: Path) -> None:
    recorder = Recorder()
    model, data, trainer = make_run(tmp_path, str(photos), steps=80, callbacks=[recorder])
    trainer.fit(model, data)
    losses = torch.stack(recorder.losses)
    assert (losses[-1] < 0.5 * losses[0]).all()
    levels = torch.stack(recorder.levels)
    assert levels[0].tolist() == [3, 3, 3] and model.finest_on.tolist() == [1, 1, 1]
    assert ((levels[1:] - levels[:-1]) <= 0).all(), "levels only ever go from coarse to fine"
    assert ((levels[:-1] - levels[1:]) <= 1).all(), "one level at a time"
    for row in model.switch_steps.tolist():  # column j-1 holds the step level j came on
        assert row[1] >= 5 and row[0] - row[1] >= 5  # min_steps per phase


def test_switch_waits_for_convergence() -> None:
    """A plateau switches after min_steps + patience; steady progress runs to the phase budget."""

    class Module:
        def __init__(self) -> None:
            self.finest_on = torch.tensor([3, 3])
            self.phase_best = torch.full((2,), torch.inf)
            self.phase_start = torch.zeros(2, dtype=torch.long)
            self.last_improved = torch.zeros(2, dtype=torch.long)
            self.done = torch.zeros(2, dtype=torch.bool)
            self.device = torch.device("cpu")
            self.switched_at: list[tuple[int, list[bool]]] = []

        def switch_on_next_level(self, rows: torch.Tensor) -> None:
            self.switched_at.append((trainer.global_step, rows.tolist()))
            self.finest_on[rows] -= 1

    class Heard(SwitchListener):
        def __init__(self) -> None:
            self.steps: list[int] = []

        def on_pyramid_switch(self, trainer, pl_module) -> None:
            self.steps.append(trainer.global_step)

    class Trainer:
        global_step = 0
        max_steps = 1000
        should_stop = False
        callbacks = [Heard()]

        class strategy:  # noqa: N801 - one process: a reduction returns its input
            @staticmethod
            def reduce(tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
                return tensor

    trainer, module = Trainer(), Module()
    switch = PyramidSwitch(rel_tol=0.01, patience=10, min_steps=5, max_steps_per_level=40)
    for step in range(1, 41):
        trainer.global_step = step
        plateau, progress = 1.0, 0.9**step  # image 0 flat, image 1 improving 10 % a step
        switch.on_train_batch_end(trainer, module, {"per_image": torch.tensor([plateau, progress])}, None, step)
    assert module.switched_at[0] == (11, [True, False])  # last improvement at step 1, +10 patience
    assert module.switched_at[1] == (22, [True, False])
    assert module.switched_at[2] == (40, [False, True])  # budget, not convergence
    assert trainer.callbacks[0].steps == [11, 22, 40]  # what the other callbacks hear
    assert not trainer.should_stop
    trainer.global_step = 41
    switch.on_train_batch_end(trainer, module, {"per_image": torch.tensor([1.0, 1.0])}, None, 41)
    assert trainer.should_stop is False  # image 0 done (level 1 converged), image 1 not yet


def test_coarse_phases_take_a_share_of_the_step_budget() -> None:
    """Without ``max_steps_per_level`` each coarse phase may take ``phase_share`` of the run."""
    switch = PyramidSwitch(min_steps=5)
    assert switch.steps_per_level(1000) == 30 and switch.steps_per_level(200) == 6
    assert switch.steps_per_level(100) == 5  # never below min_steps
    assert switch.steps_per_level(-1) == float("inf")  # no budget: phases run to convergence
    assert PyramidSwitch(max_steps_per_level=15).steps_per_level(1000) == 15  # explicit cap wins
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="phase_share"):
            PyramidSwitch(phase_share=bad)


def test_a_short_run_spends_its_budget_at_full_detail(tmp_path: Path, photos: Path) -> None:
    recorder = Recorder()
    model, data, trainer = make_run(
        tmp_path, str(photos), steps=60, callbacks=[recorder], max_steps_per_level=None,
        phase_share=0.1, patience=1000,
    )  # fmt: skip
    trainer.fit(model, data)
    # Each of the K − 1 = 2 coarse phases ends at its cap, 0.1 × 60 = 6 steps.
    assert model.switch_steps.tolist() == [[12, 6]] * 3  # column j-1: the step level j came on
    # recorder.levels[i] is the state after step i + 1: the last 48 steps run at full detail.
    assert (recorder.levels[10] == 2).all() and all((levels == 1).all() for levels in recorder.levels[11:])


def test_shallow_layer_reconstruction_is_close(tmp_path: Path, photos: Path) -> None:
    model, data, trainer = make_run(
        tmp_path, str(photos / "chelsea.png"), steps=150, layer="conv1",
        min_steps=10, patience=10, max_steps_per_level=40,
    )  # fmt: skip
    trainer.fit(model, data)
    results = json.loads((Path(trainer.log_dir) / "results.json").read_text())
    # Measured 0.041 after 120 steps (random weights, 64 px); the bound leaves room for BLAS noise.
    assert results["images"][0]["relative_error"] < 0.06
    assert results["status"] == "finished"


def test_resume_continues_at_the_same_level_and_step(tmp_path: Path, photos: Path) -> None:
    """Resuming the step-30 checkpoint of a 60-step run ends where the straight run ends."""
    images = str(photos / "coffee.png")
    pl.seed_everything(0)
    straight, every = Recorder(), ModelCheckpoint(every_n_train_steps=30, save_top_k=-1)
    model, data, trainer = make_run(tmp_path / "a", images, steps=60, callbacks=[straight, every])
    trainer.fit(model, data)
    checkpoint = next(Path(every.dirpath).glob("*step=30.ckpt"))
    level_at_30 = straight.levels[29]

    pl.seed_everything(0)
    resumed = Recorder()
    second, data, trainer = make_run(tmp_path / "c", images, steps=60, callbacks=[resumed])
    trainer.fit(second, data, ckpt_path=checkpoint)
    assert resumed.start[0] == 30 and torch.equal(resumed.start[1], level_at_30)
    assert torch.allclose(second.I_pre, model.I_pre, atol=1e-5)
    assert torch.equal(second.switch_steps, model.switch_steps)
    # The checkpoint carries I_pre and the per-image state, not the frozen network.
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert set(state) == {
        "I_pre", "finest_on", "switch_steps", "phase_best", "phase_start", "last_improved", "done"
    }


class Poison(Callback):
    def __init__(self, at_step: int, error: type[BaseException] | None = None) -> None:
        self.at_step, self.error = at_step, error

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.at_step:
            if self.error is not None:
                raise self.error()
            pl_module.I_pre.grad.fill_(float("nan"))


def test_non_finite_gradient_stops_with_the_step_and_keeps_the_last_good_image(tmp_path: Path, photos: Path) -> None:
    model, data, trainer = make_run(tmp_path, str(photos / "coffee.png"), steps=50, callbacks=[Poison(12)])
    with pytest.raises(NonFiniteLossError, match="at step 12"):
        trainer.fit(model, data)
    assert torch.isfinite(model.I_pre).all()
    run = Path(trainer.log_dir)
    results = json.loads((run / "results.json").read_text())
    assert results["status"].startswith("failed: NonFiniteLossError") and results["steps"] == 12
    assert (run / "reconstructions" / "coffee.png").exists()


def test_ctrl_c_writes_results_reached_so_far_and_a_checkpoint(tmp_path: Path, photos: Path) -> None:
    saver = ModelCheckpoint(every_n_train_steps=1000, save_on_exception=True)
    model, data, trainer = make_run(
        tmp_path, str(photos / "coffee.png"), steps=50, callbacks=[Poison(7, KeyboardInterrupt), saver]
    )
    with pytest.raises(SystemExit):
        trainer.fit(model, data)
    run = Path(trainer.log_dir)
    results = json.loads((run / "results.json").read_text())
    assert results["status"].startswith("interrupted") and results["steps"] == 7
    assert (run / "reconstructions" / "coffee.png").exists()
    assert list((run / "checkpoints").glob("*.ckpt"))


def test_a_level_switch_refreshes_last_ckpt(tmp_path: Path, photos: Path) -> None:
    from slp_lightning import InversionCheckpoint

    # A crash that saves nothing (save_on_exception is off) leaves last.ckpt as the switches left it.
    saver = InversionCheckpoint(every_n_train_steps=1000, save_last=True)
    callbacks = [Poison(38, RuntimeError), saver]
    model, data, trainer = make_run(tmp_path, str(photos / "coffee.png"), steps=50, callbacks=callbacks)
    with pytest.raises(RuntimeError):
        trainer.fit(model, data)
    last = torch.load(Path(saver.dirpath) / "last.ckpt", weights_only=False)
    switched = model.switch_steps[model.switch_steps >= 0]
    assert len(switched) == 2 and last["global_step"] == int(switched.max()) < 38
    assert last["state_dict"]["finest_on"].tolist() == [1]
