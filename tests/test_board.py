"""What a run shows in TensorBoard, read back with TensorBoard's own reader."""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from benchmarks import tensorboard_check
from slp_lightning import FeatureInversion, OutputWriter, PyramidSwitch, TargetImages
from slp_lightning.cli.commands import main

from helpers import tiny_args


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return events


def hparams_of(events: EventAccumulator) -> tuple[dict, list[str]]:
    """The run's HParams row: its settings, and the tags of its metrics."""
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    settings = {k: v.ListFields()[0][1] for k, v in start.session_start_info.hparams.items()}
    return settings, [m.name.tag for m in experiment.experiment.metric_infos]


def test_a_run_logs_quality_curves_per_image_and_its_hparams_row(
    tmp_path: Path, photos: Path
) -> None:
    pl.seed_everything(0, verbose=False)
    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    logger = TensorBoardLogger(tmp_path, name="run", default_hp_metric=False)
    switch = PyramidSwitch(min_steps=2, patience=100, max_steps_per_level=4)
    trainer = pl.Trainer(max_steps=12, callbacks=[switch, OutputWriter(metrics_every_n_steps=5)], logger=logger,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, TargetImages(str(photos), image_size=64))
    events = read_events(logger.log_dir)
    tags = set(events.Tags()["scalars"])
    for tag in ("error/normalized", "image/psnr", "image/ssim"):
        assert {tag, f"{tag}/astronaut", f"{tag}/coffee"} <= tags
    assert "hp_metric" not in tags
    # Both switches (steps 4 and 8), the cadence (step 10) and the end (12).
    steps = [e.step for e in events.Scalars("error/normalized/coffee")]
    assert steps == [4, 5, 8, 10, 12]
    final = events.Scalars("final/normalized_error")[-1].value
    results = trainer.callbacks[1].results
    assert abs(final - results["mean_normalized_error"]) < 1e-6
    coffee = next(image for image in results["images"] if image["name"] == "coffee")
    assert (
        abs(events.Scalars("error/normalized/coffee")[-1].value - coffee["normalized_error"]) < 1e-6
    )
    settings, metrics = hparams_of(events)
    assert (
        settings["method"] == "slp"
        and settings["layer"] == "conv2"
        and settings["pyramid_levels"] == 3
    )
    assert settings["image_size"] == 64 and settings["max_steps"] == 12 and "precision" in settings
    assert sorted(metrics) == ["final/normalized_error", "final/psnr", "final/ssim"]


@pytest.mark.slow
def test_a_sweeps_jobs_are_hparams_rows_under_its_folder(tmp_path: Path, photos: Path) -> None:
    main(tiny_args(tmp_path, photos / "coffee.png", "--sweep.methods=[slp, pixel]",
                   "--trainer.max_steps=4"))  # fmt: skip
    sweep = tmp_path / "alexnet_sweep" / "version_0"
    # Every event file is a job's, in the one sweep folder: `tensorboard --logdir` it shows the sweep.
    runs = sorted({path.parent for path in tmp_path.rglob("events.out.tfevents.*")})
    assert runs == [sweep / "pixel_conv2", sweep / "slp_conv2"]
    methods = []
    for run in runs:
        events, results = read_events(run), json.loads((run / "results.json").read_text())
        settings, metrics = hparams_of(events)
        methods.append(settings["method"])
        assert sorted(metrics) == ["final/normalized_error", "final/psnr", "final/ssim"]
        for tag in metrics:
            final = events.Scalars(tag)[-1].value
            assert final == pytest.approx(results[f"mean_{tag.removeprefix('final/')}"], abs=1e-6)
        assert "hp_metric" not in events.Tags()["scalars"]
    assert methods == ["pixel", "slp"]


@pytest.mark.slow
def test_tensorboard_serves_a_finished_sweeps_runs_and_hparams_rows(
    capsys: pytest.CaptureFixture,
) -> None:
    assert tensorboard_check.main(["--quick"]) == 0, capsys.readouterr().out[-3000:]
    assert "ok: both jobs listed, with their hparams and final metrics" in capsys.readouterr().out


def test_the_tensorboard_check_names_what_tensorboard_gets_wrong() -> None:
    # TensorBoard's answers as it gives them (JSON of the HParams plugin's protos).
    experiment = {"hparamInfos": [{"name": "method"}], "metricInfos": [{"name": {"tag": "final/psnr"}}]}  # fmt: skip
    rows = [
        {"hparams": {"method": method, "layer": "conv2", "pyramid_levels": 3.0},
         "sessions": [{"name": f"{method}_conv2"}],
         "metricValues": [{"name": {"tag": "final/psnr"}, "value": 10.0}]}
        for method in ("slp", "pixel")
    ]  # fmt: skip
    jobs = {f"{method}_conv2": {"method": method, "layer": "conv2", "pyramid_levels": 3, "mean_psnr": 10.0}
            for method in ("slp", "pixel")}  # fmt: skip
    runs = list(jobs)
    assert tensorboard_check.mismatches(runs, experiment, rows, jobs) == []
    jobs["slp_conv2"]["mean_psnr"] = 11.0
    assert tensorboard_check.mismatches(runs[1:], experiment, rows, jobs) == [
        "/data/runs lists ['pixel_conv2'], not the jobs ['pixel_conv2', 'slp_conv2']",
        "slp_conv2: final/psnr 10.0, results.json 11.0",
    ]
    assert tensorboard_check.placeholders({"slp_conv2": {"hp_metric": {}}, "pixel_conv2": {}}) == [
        "slp_conv2: has hp_metric"
    ]


def test_a_cadence_below_one_step_is_refused_naming_the_option() -> None:
    for option in ("metrics_every_n_steps", "image_every_n_steps"):
        with pytest.raises(
            ValueError, match=rf"^{option} must be an integer >= 1; got 0$"
        ) as error:
            OutputWriter(**{option: 0})
        assert error.value.arguments == (
            f"OutputWriter.{option}",
        )  # --outputs.<option> on the command line
