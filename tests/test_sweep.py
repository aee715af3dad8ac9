"""Sweeps (sweep.py): their jobs, summary files and the checks made before anything runs."""

import csv
import json
from pathlib import Path

import pytest

from slp_lightning import FeatureInversion
from slp_lightning.cli import main
from slp_lightning.sweep import Sweep

from helpers import tiny_args


def test_sweep_jobs() -> None:
    sweep = Sweep(methods=["slp", "pixel"], layers=["conv1", "conv5"], pyramid_levels=[3, 6])
    jobs = sweep.jobs("slp", "alexnet", "conv5")
    assert [job.name(sweep) for job in jobs] == [
        "slp_K3_conv1", "slp_K6_conv1", "slp_K3_conv5", "slp_K6_conv5", "pixel_conv1", "pixel_conv5",
    ]  # fmt: skip
    assert not Sweep() and Sweep().jobs("tv", "alexnet", "fc6")[0].method == "tv"
    networks = Sweep(networks=["dsift", "dsift_color"], methods=["slp", "pixel"])
    assert [job.name(networks) for job in networks.jobs("slp", "dsift", None)] == [
        "slp_dsift",
        "slp_dsift_color",
        "pixel_dsift",
        "pixel_dsift_color",
    ]


@pytest.mark.slow
def test_sweep_writes_the_summary_files(tmp_path: Path, photos: Path) -> None:
    main(tiny_args(tmp_path, photos, "--trainer.max_steps=20",
                   "--sweep.layers=[conv1, conv2]", "--sweep.methods=[slp, pixel]"))  # fmt: skip
    run = tmp_path / "alexnet_sweep" / "version_0"
    with open(run / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns = "method,network,layer,images,steps,mean_normalized_error,mean_relative_error,mean_psnr,mean_ssim"
    assert set(columns.split(",")) <= set(rows[0])
    assert [(r["method"], r["layer"]) for r in rows] == [
        ("slp", "conv1"),
        ("slp", "conv2"),
        ("pixel", "conv1"),
        ("pixel", "conv2"),
    ]
    for row in rows:
        results = json.loads((run / row["job"] / "results.json").read_text())
        assert float(row["mean_normalized_error"]) == pytest.approx(
            results["mean_normalized_error"]
        )
        assert (
            row["images"] == "3"
            and 0 < int(row["steps"]) <= 20
            and 0 < float(row["mean_normalized_error"]) < 2
        )
        image = results["images"][0]
        assert image["normalized_error"] == pytest.approx(
            image["feature_error"] / results["N_f"], rel=1e-5
        )
    table = (run / "summary.md").read_text()
    assert "| method | conv1 | conv2 |" in table and "| pixel |" in table and "| slp |" in table
    assert (run / "summary.png").stat().st_size > 1000 and (run / "config.yaml").exists()


@pytest.mark.slow
def test_bad_sweeps_and_settings_fail_before_anything_runs(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(ValueError, match=r"^methods: unknown \['magic'\]; valid: slp, pixel, tv"):
        Sweep(methods=["slp", "magic"])
    with pytest.raises(ValueError, match="^networks: unknown"):
        Sweep(networks=["vgg99"])
    with pytest.raises(ValueError, match="pyramid_levels must be an integer >= 1"):
        Sweep(pyramid_levels=[0])
    with pytest.raises(ValueError, match="alexnet has no layer 'norm1'"):
        main(tiny_args(tmp_path, photos, "--sweep.layers=[conv1, norm1]"))
    with pytest.raises(
        ValueError, match="too small for a 7-level Laplacian pyramid"
    ):  # 64 px images
        main(tiny_args(tmp_path, photos, "--sweep.pyramid_levels=[3, 7]"))
    assert not list(tmp_path.rglob("results.json"))
    with pytest.raises(ValueError, match="compactness must be a number >= 0"):
        FeatureInversion(weights="random", compactness=-1.0)


@pytest.mark.slow
def test_a_sweep_runs_from_python_and_returns_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning.pytorch as pl
    import torchvision

    from slp_lightning import OutputWriter, PyramidSwitch, TargetImages
    from slp_lightning.networks import alexnet
    from slp_lightning.sweep import run

    def trainer_for(logger) -> pl.Trainer:  # noqa: ANN001
        return pl.Trainer(max_steps=8, logger=logger, callbacks=[PyramidSwitch(), OutputWriter()],
                          enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False)  # fmt: skip

    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    data = TargetImages("skimage:astronaut", image_size=64)
    built = []
    monkeypatch.setattr(alexnet, "alexnet", lambda: built.append(1) or torchvision.models.alexnet())
    rows = run(
        Sweep(methods=["slp", "pixel"], layers=["conv1", "conv2"]),
        model,
        data,
        trainer_for,
        tmp_path / "v0",
    )
    assert (
        len(built) == 1
    )  # four jobs, one AlexNet: cut at each job's layer (weights.reused_models)
    assert [(r["method"], r["layer"], r["column"]) for r in rows] == [
        ("slp", "conv1", "conv1"), ("slp", "conv2", "conv2"), ("pixel", "conv1", "conv1"), ("pixel", "conv2", "conv2"),
    ]  # fmt: skip
    for row in rows:  # in memory, the same numbers as the job's results.json
        results = json.loads((tmp_path / "v0" / row["job"] / "results.json").read_text())
        assert (
            row["mean_normalized_error"] == results["mean_normalized_error"] and row["steps"] == 8
        )
    with pytest.raises(ValueError, match="a sweep.s Trainers need an OutputWriter"):
        run(
            Sweep(layers=["conv1"]),
            model,
            data,
            lambda logger: pl.Trainer(logger=logger),
            tmp_path / "v1",
        )
