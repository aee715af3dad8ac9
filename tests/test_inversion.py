import json
import math
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from slp_lightning import FeatureInversion, OutputWriter, PyramidSwitch, TargetImages
from slp_lightning.data.images import load_image
from slp_lightning.maths import schedule
from slp_lightning.maths.guards import NonFiniteLossError
from slp_lightning.maths.schedule import I_PRE_BOUND, LearningRates, SwitchSchedule


class Recorder(Callback):
    """Keeps every step's per-image loss and pyramid state."""

    def __init__(self) -> None:
        self.losses, self.levels, self.start = [], [], None

    def on_train_start(self, trainer: pl.Trainer, pl_module: FeatureInversion) -> None:
        self.start = (trainer.global_step, pl_module.schedule.finest_on.clone())

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: FeatureInversion,
        outputs: dict,
        batch: int,
        batch_idx: int,
    ) -> None:
        self.losses.append(outputs["per_image"].clone())
        self.levels.append(pl_module.schedule.finest_on.clone())


def make_run(
    root: Path,
    images: str,
    *,
    steps: int,
    layer: str = "conv2",
    callbacks: Sequence[Callback] = (),
    **switch: object,
) -> tuple[FeatureInversion, TargetImages, pl.Trainer]:
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
    assert trainable == [("inversion.I_pre", (3, 3, 64, 64))]
    optimised = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]
    assert len(optimised) == 1 and optimised[0] is model.inversion.I_pre
    assert all(p.grad is None for p in model.network.parameters())


def test_loss_decreases_and_levels_switch_on_coarse_to_fine(tmp_path: Path, photos: Path) -> None:
    recorder = Recorder()
    model, data, trainer = make_run(tmp_path, str(photos), steps=80, callbacks=[recorder])
    trainer.fit(model, data)
    losses = torch.stack(recorder.losses)
    assert (losses[-1] < 0.5 * losses[0]).all()
    levels = torch.stack(recorder.levels)
    assert levels[0].tolist() == [3, 3, 3] and model.schedule.finest_on.tolist() == [1, 1, 1]
    assert ((levels[1:] - levels[:-1]) <= 0).all(), "levels only ever go from coarse to fine"
    assert ((levels[:-1] - levels[1:]) <= 1).all(), "one level at a time"
    for row in model.schedule.switch_steps.tolist():  # the steps of the switches, in order
        assert row[0] >= 5 and row[1] - row[0] >= 5  # min_steps per phase


def test_a_short_run_spends_its_budget_at_full_detail(tmp_path: Path, photos: Path) -> None:
    recorder = Recorder()
    model, data, trainer = make_run(
        tmp_path, str(photos), steps=60, callbacks=[recorder], max_steps_per_level=None,
        phase_share=0.1, patience=1000,
    )  # fmt: skip
    trainer.fit(model, data)
    # Each of the K − 1 = 2 coarse phases ends at its cap, 0.1 × 60 = 6 steps.
    assert model.schedule.switch_steps.tolist() == [[6, 12]] * 3
    # recorder.levels[i] is the state after step i + 1: the last 48 steps run at full detail.
    assert (recorder.levels[10] == 2).all() and all(
        (levels == 1).all() for levels in recorder.levels[11:]
    )


class StepScales(Callback):
    """Each step's per-image rate as a share of the optimiser's, from plain SGD's update."""

    def __init__(self, lr: float) -> None:
        self.lr, self.scales, self.steps = lr, [], []

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: FeatureInversion, optimizer: object
    ) -> None:
        self.before, self.grad = (
            pl_module.inversion.I_pre.detach().clone(),
            pl_module.inversion.I_pre.grad.clone(),
        )
        self.final = pl_module.schedule.final.clone()  # before this step's switches

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: FeatureInversion,
        outputs: dict,
        batch: int,
        batch_idx: int,
    ) -> None:
        step = self.before - pl_module.inversion.I_pre.detach()
        self.steps.append((step, self.lr * self.grad, self.final))
        step, grad = step.flatten(1), self.lr * self.grad.flatten(1)
        self.scales.append((step * grad).sum(1) / (grad * grad).sum(1))


def cosine(progress: float) -> float:
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize(
    ("method", "coarse_lr"),
    [
        pytest.param("slp", 1.0, marks=pytest.mark.slow),
        ("slp", 0.25),
        pytest.param("pixel", 0.25, marks=pytest.mark.slow),
    ],
)
def test_the_cosine_runs_over_each_images_final_phase(
    tmp_path: Path, photos: Path, method: str, coarse_lr: float
) -> None:
    """sLP's full-detail phase gets the whole cosine, as plain descent does: a cosine over the run
    gave it only the run's tail, and it lost to plain descent at CRAFT relu1_2. Coarse phases run
    at ``coarse_lr``; the baselines have none, so it changes nothing for them."""
    scales = StepScales(lr=0.1)
    model, data, trainer = make_run(
        tmp_path, str(photos), steps=60, callbacks=[scales], max_steps_per_level=None,
        phase_share=0.1, patience=1000,
    )  # fmt: skip
    model = model.with_settings(method=method, coarse_lr=coarse_lr)
    model.optimizer = lambda params: torch.optim.SGD(params, lr=0.1)
    trainer.fit(model, data)
    start = 12 if method == "slp" else 0  # coarse phases of 6 steps each (K = 3)
    expected = [coarse_lr] * start + [cosine((t - start) / (60 - start)) for t in range(start, 60)]
    measured = torch.stack(scales.scales)  # (steps, images)
    assert measured.shape == (60, 3)
    assert torch.allclose(measured, torch.tensor(expected)[:, None].expand(60, 3), atol=1e-4)


@pytest.mark.parametrize(
    ("method", "band_lr"),
    [("slp", [0.25, 2.0, 4.0]), pytest.param("slp", [0.5, 1.0], marks=pytest.mark.slow),
     pytest.param("pixel", [0.5, 1.0], marks=pytest.mark.slow)],
)  # fmt: skip
def test_band_lr_scales_each_band_of_full_detail_steps(
    tmp_path: Path, photos: Path, method: str, band_lr: list[float]
) -> None:
    """Each full-detail step of sLP has its Laplacian levels multiplied by ``band_lr`` (a pyramid
    of its own depth, here not K); coarse phases' steps are whole, and the baselines (no pyramid)
    are left alone."""
    scales = StepScales(lr=0.1)
    model, data, trainer = make_run(
        tmp_path, str(photos), steps=30, callbacks=[scales], max_steps_per_level=None,
        phase_share=0.1, patience=1000,
    )  # fmt: skip
    model = model.with_settings(method=method, band_lr=band_lr, lr_schedule="constant")
    model.optimizer = lambda params: torch.optim.SGD(params, lr=0.1)
    trainer.fit(model, data)
    pyramid, finals = model.inversion.pyramid, []
    multiples = torch.tensor(band_lr if method == "slp" else [1.0]).reshape(1, -1)
    for step, plain, final in scales.steps:
        levels = torch.where(final[:, None], multiples, 1.0)
        assert torch.allclose(step, pyramid.scale_bands(plain, levels), atol=1e-6)
        finals.append(final.all())
    # sLP: 5 + 5 coarse steps (K = 3, min_steps 5), then 20 filtered ones; pixel: 30 whole.
    assert sum(finals) == (20 if method == "slp" else 30)
    if method == "slp":  # and the filter did change the steps
        assert not torch.allclose(step, plain, atol=1e-4)


def test_band_lr_steps_beyond_the_bound_go_no_further_than_plain_steps() -> None:
    plain = torch.tensor([-5.0, -1.0, 0.0, 3.0, 6.0])
    filtered = torch.tensor([-7.0, -6.0, 5.0, 4.0, 8.0])
    b = I_PRE_BOUND
    assert LearningRates.bounded(plain, filtered).tolist() == pytest.approx([-5, -b, b, 4, 6])


@pytest.mark.parametrize("bound", [I_PRE_BOUND, pytest.param(math.inf, marks=pytest.mark.slow)])
def test_band_lr_keeps_I_pre_out_of_the_range_constraint_tails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: float
) -> None:
    """On a black target the low-pass band's ×16 steps would carry ``I_pre`` deep into σ's flat
    tail (``bound`` inf: without the bound); with it, past ±I_PRE_BOUND, only the plain step's
    own progress."""
    monkeypatch.setattr(schedule, "I_PRE_BOUND", bound)
    Image.new("RGB", (64, 64)).save(tmp_path / "black.png")
    model, data, trainer = make_run(
        tmp_path, str(tmp_path / "black.png"), steps=40, max_steps_per_level=None,
        phase_share=0.1, patience=1000,
    )  # fmt: skip
    model = model.with_settings(band_lr=[1.0, 16.0], lr_schedule="constant")
    model.optimizer = lambda params: torch.optim.Adam(params, lr=0.5)
    trainer.fit(model, data)
    lowest = model.inversion.I_pre.min().item()
    if bound == I_PRE_BOUND:  # measured -10.2: past the bound, the plain step's 0.5 a step
        assert lowest > -3 * I_PRE_BOUND
    else:  # measured -67
        assert lowest < -6 * I_PRE_BOUND


def test_band_lr_deeper_than_the_image_allows_is_refused() -> None:
    settings = {"network": "dsift", "image_size": 32, "pyramid_levels": 3}
    with pytest.raises(ValueError, match="band_lr has 6 levels, too many for image_size 32.*64 px"):
        FeatureInversion(**settings, band_lr=[1, 2, 4, 8, 16, 32])
    FeatureInversion(**settings, band_lr=[1, 2, 4, 8, 16])  # deeper than K = 3: allowed


def test_band_lr_is_refused_where_I_pre_is_a_spectrum() -> None:
    with pytest.raises(ValueError, match="slp_fft method's I_pre is not pixels"):
        FeatureInversion(method="slp_fft", weights="random", band_lr=[0.5, 1])
    FeatureInversion(method="slp_color", weights="random", band_lr=[0.5, 1])  # pixels: accepted


@pytest.mark.parametrize("name", ["coarse_lr", "band_lr"])
@pytest.mark.parametrize("multiple", [0.0, -1.0])
def test_a_learning_rate_multiple_not_above_0_is_refused(name: str, multiple: float) -> None:
    with pytest.raises(
        ValueError,
        match=rf"{name} \(a multiple of the optimiser's learning rate\) must be a number > 0",
    ):
        FeatureInversion(weights="random", **{name: multiple})
    FeatureInversion(weights="random", **{name: 4.0})  # a multiple, not a share: above 1 is fine


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert torch.allclose(second.inversion.I_pre, model.inversion.I_pre, atol=1e-5)
    assert torch.equal(second.schedule.switch_steps, model.schedule.switch_steps)
    # The checkpoint carries I_pre and the per-image state, not the frozen network.
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert set(state) == {"inversion.I_pre"} | {
        f"schedule.{k}" for k in SwitchSchedule(1, 3).state_dict()
    }


class Poison(Callback):
    def __init__(self, at_step: int, error: type[BaseException] | None = None) -> None:
        self.at_step, self.error = at_step, error

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: FeatureInversion, optimizer: torch.optim.Optimizer
    ) -> None:
        if trainer.global_step == self.at_step:
            if self.error is not None:
                raise self.error()
            pl_module.inversion.I_pre.grad.fill_(float("nan"))


def test_non_finite_gradient_stops_with_the_step_and_keeps_the_last_good_image(
    tmp_path: Path, photos: Path
) -> None:
    model, data, trainer = make_run(
        tmp_path, str(photos / "coffee.png"), steps=50, callbacks=[Poison(12)]
    )
    with pytest.raises(NonFiniteLossError, match="at step 12"):
        trainer.fit(model, data)
    assert torch.isfinite(model.inversion.I_pre).all()
    run = Path(trainer.log_dir)
    results = json.loads((run / "results.json").read_text())
    assert results["status"].startswith("failed: NonFiniteLossError") and results["steps"] == 12
    assert (run / "reconstructions" / "coffee.png").exists()


def test_ctrl_c_writes_results_reached_so_far_and_a_checkpoint(
    tmp_path: Path, photos: Path
) -> None:
    saver = ModelCheckpoint(every_n_train_steps=1000, save_on_exception=True)
    model, data, trainer = make_run(
        tmp_path,
        str(photos / "coffee.png"),
        steps=50,
        callbacks=[Poison(7, KeyboardInterrupt), saver],
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
    model, data, trainer = make_run(
        tmp_path, str(photos / "coffee.png"), steps=50, callbacks=callbacks
    )
    with pytest.raises(RuntimeError):
        trainer.fit(model, data)
    last = torch.load(Path(saver.dirpath) / "last.ckpt", weights_only=False)
    switched = model.schedule.switch_steps[model.schedule.switch_steps >= 0]
    assert len(switched) == 2 and last["global_step"] == int(switched.max()) < 38
    assert last["state_dict"]["schedule.finest_on"].tolist() == [1]


def test_baselines_start_with_every_level_on() -> None:
    image = load_image("skimage:chelsea", 64)[None]
    for method, start in [("slp", 3), ("pixel", 1), ("tv", 1)]:
        model = FeatureInversion(
            method=method, layer="conv2", weights="random", image_size=64, pyramid_levels=3
        )
        model.set_targets(image, ["chelsea"])
        assert model.schedule.finest_on.tolist() == [start]
        I_r, I_in = model.inversion.images(model.schedule.finest_on)
        assert torch.equal(I_r, I_in) == (method != "slp")
    with pytest.raises(ValueError, match="valid methods: slp, pixel, tv"):
        FeatureInversion(method="magic", weights="random")


@pytest.mark.slow
def test_n_f_reference_set_for_a_single_target(photos: Path) -> None:
    image = load_image(str(photos / "coffee.png"), 64)[None]
    builtin = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3)
    builtin.set_targets(image, ["coffee"])
    folder = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3,
                              reference_images=str(photos))  # fmt: skip
    folder.set_targets(image, ["coffee"])
    assert (
        builtin.inversion.n_f > 0
        and folder.inversion.n_f > 0
        and builtin.inversion.n_f != pytest.approx(folder.inversion.n_f)
    )
    targets = torch.stack([load_image(str(p), 64) for p in sorted(photos.glob("*.png"))])
    own = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3)
    own.set_targets(targets, ["a", "b", "c"])
    assert own.inversion.n_f == pytest.approx(
        folder.inversion.n_f
    )  # the folder holds the same three photographs


def test_flat_start_without_gradient_is_reported(tmp_path: Path) -> None:
    model = FeatureInversion(network="dsift", image_size=32, pyramid_levels=2, init_noise=0.0)
    trainer = pl.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="gradient of I_pre is exactly zero.*init_noise"):
        trainer.fit(model, TargetImages("skimage:camera", image_size=32))


def test_identical_targets_are_refused_before_the_first_step() -> None:
    """Two identical targets have N_f = 0: every error would be infinite at the end of the run."""
    same = torch.rand(1, 3, 64, 64).expand(2, -1, -1, -1)
    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    with pytest.raises(ValueError, match=r"N_f, .* is 0.0: the targets are all alike"):
        model.set_targets(same, ["a", "b"])
    model.set_targets(torch.rand(2, 3, 64, 64), ["a", "b"])  # different targets are fine
    assert model.inversion.n_f > 0


def test_the_maths_runs_without_lightning_as_the_readme_shows() -> None:
    """The README's loop of one's own: Inversion, SwitchSchedule and ConvergenceRule, no Trainer."""
    from slp_lightning.inversion.torch_model import Inversion
    from slp_lightning.maths.schedule import ConvergenceRule, SwitchSchedule
    from slp_lightning.methods import MethodSettings, build_method
    from slp_lightning.networks import build_feature_network

    targets = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    network = build_feature_network("alexnet", "conv2", weights="random")
    method = build_method("slp", MethodSettings(layer="conv2", compactness=0.01))
    inversion = Inversion(network, method, pyramid_levels=3, image_size=64)
    start = method.initial_I_pre(targets.shape, torch.Generator().manual_seed(0))
    inversion.set_targets(targets, inversion.features(targets), start, n_f=1.0)
    schedule, rule = (
        SwitchSchedule(len(targets), levels=3),
        ConvergenceRule(min_steps=2, max_steps_per_level=4),
    )
    optimizer = torch.optim.Adam([inversion.I_pre], lr=0.05)
    first = inversion.evaluate()["feature_error"]
    for step in range(12):
        optimizer.zero_grad()
        E, D, Z = inversion.losses(schedule.finest_on)
        Z.sum().backward()
        optimizer.step()
        schedule.switch_on_next_level(
            rule.converged(schedule, Z.detach(), step, max_steps=12), step
        )
    assert schedule.finest_on.tolist() == [1, 1] and schedule.switch_steps.tolist() == [
        [4, 8],
        [4, 8],
    ]
    assert (inversion.evaluate()["feature_error"] < 0.8 * first).all()


@pytest.mark.parametrize("precision", ["64-true", "16-true"])
def test_a_precision_that_would_cast_I_pre_is_refused_before_the_first_step(precision: str) -> None:
    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    trainer = pl.Trainer(max_steps=2, precision=precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(
        ValueError, match=rf"precision '{precision}' is not one an inversion runs in"
    ):
        trainer.fit(model, TargetImages("skimage:astronaut", image_size=64))
    assert trainer.global_step == 0


def test_the_coarse_rate_is_the_networks_own_unless_given() -> None:
    """Colour dense SIFT runs its coarse phases at 0.2 of the rate (a sweep over networks gives
    each network its own), every other network at the full rate."""
    settings = {"weights": "random", "pyramid_levels": 3, "image_size": 64}
    assert FeatureInversion(network="dsift_color", **settings).rates.coarse_lr == 0.2
    assert FeatureInversion(network="dsift", **settings).rates.coarse_lr == 1.0
    assert FeatureInversion(network="dsift_color", coarse_lr=0.5, **settings).rates.coarse_lr == 0.5
    assert FeatureInversion(layer="conv2", **settings).rates.coarse_lr == 1.0
