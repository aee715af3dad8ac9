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
        "slp_dsift", "slp_dsift_color", "pixel_dsift", "pixel_dsift_color",
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
        ("slp", "conv1"), ("slp", "conv2"), ("pixel", "conv1"), ("pixel", "conv2")
    ]
    for row in rows:
        results = json.loads((run / row["job"] / "results.json").read_text())
        assert float(row["mean_normalized_error"]) == pytest.approx(results["mean_normalized_error"])
        assert row["images"] == "3" and 0 < int(row["steps"]) <= 20 and 0 < float(row["mean_normalized_error"]) < 2
        image = results["images"][0]
        assert image["normalized_error"] == pytest.approx(image["feature_error"] / results["N_f"], rel=1e-5)
    table = (run / "summary.md").read_text()
    assert "| method | conv1 | conv2 |" in table and "| pixel |" in table and "| slp |" in table
    assert (run / "summary.png").stat().st_size > 1000 and (run / "config.yaml").exists()

def test_bad_sweeps_and_settings_fail_before_anything_runs(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(ValueError, match=r"sweep.methods: unknown \['magic'\]; valid: slp, pixel, tv"):
        Sweep(methods=["slp", "magic"])
    with pytest.raises(ValueError, match="sweep.networks: unknown"):
        Sweep(networks=["vgg99"])
    with pytest.raises(ValueError, match="pyramid_levels must be >= 1"):
        Sweep(pyramid_levels=[0])
    with pytest.raises(ValueError, match="alexnet has no layer 'norm1'"):
        main(tiny_args(tmp_path, photos, "--sweep.layers=[conv1, norm1]"))
    assert not list(tmp_path.rglob("results.json"))
    with pytest.raises(ValueError, match="compactness and init_noise must be >= 0"):
        FeatureInversion(weights="random", compactness=-1.0)
