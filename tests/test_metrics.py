"""The paper's metric, the baselines and sweeps."""

import csv
import json
from pathlib import Path

import pytest
import torch

from slp_lightning import FeatureInversion
from slp_lightning.cli import main
from slp_lightning.data import load_image
from slp_lightning.metrics import NormalizedError, image_quality, mean_pairwise_distance
from slp_lightning.objective import alpha_norm, total_variation, tv_loss
from slp_lightning.sweep import Sweep

from helpers import tiny_args

FEATURES = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])  # pairwise distances 5, 10, 5


def test_n_f_is_the_mean_distance_over_distinct_pairs() -> None:
    assert mean_pairwise_distance(FEATURES) == pytest.approx((5 + 10 + 5) / 3)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_distance(FEATURES[:1])


def test_normalized_error_by_hand() -> None:
    metric = NormalizedError(n_f=20 / 3)
    metric.update(FEATURES[:2], FEATURES[1:])  # errors 5 and 5
    metric.update(FEATURES[2:], FEATURES[:1])  # error 10
    assert metric.compute().item() == pytest.approx((5 + 5 + 10) / 3 / (20 / 3))


def test_normalized_error_accumulates_across_ranks() -> None:
    """Two fake ranks: rank 0 sees one image, rank 1 two; the mean is over all three."""
    rank1 = NormalizedError(n_f=5.0)
    rank1.update(FEATURES[1:], FEATURES[:2])  # errors 5, 5
    gathered = []

    def all_gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:  # noqa: ANN001
        gathered.append(tensor)
        return [tensor, torch.cat(rank1.errors)]

    rank0 = NormalizedError(n_f=5.0, dist_sync_fn=all_gather, distributed_available_fn=lambda: True)
    rank0.update(FEATURES[2:], FEATURES[:1])  # error 10
    assert rank0.compute().item() == pytest.approx((10 + 5 + 5) / 3 / 5)
    assert gathered, "the metric synchronised its state"


def test_image_quality_of_a_perfect_and_a_noisy_reconstruction() -> None:
    target = load_image("skimage:coffee", 48)[None]
    noisy = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    quality = image_quality(torch.cat([target, noisy]), target.repeat(2, 1, 1, 1))
    assert quality["psnr"][0] > 80 and 15 < quality["psnr"][1] < 25
    assert quality["ssim"][0] == pytest.approx(1.0) and quality["ssim"][1] < 0.9


def test_tv_baseline_terms() -> None:
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert alpha_norm(flat).item() == 0 and total_variation(flat).item() == 0
    edge = flat.clone()
    edge[..., 4:] = 1.0  # one vertical edge of height 0.5 (1 in 2x − 1 units)
    # 7 of the 7×7 difference positions cross the edge: (1 / V)² = 6.5² each.
    assert total_variation(edge).item() == pytest.approx(7 * 6.5**2 / 49)
    assert alpha_norm(edge).item() == pytest.approx(0.5)
    features, target = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 1.0]])
    assert tv_loss(features, target, flat, (1.0, 1.0)).item() == pytest.approx(1 / 5)


def test_baselines_start_with_every_level_on() -> None:
    image = load_image("skimage:chelsea", 64)[None]
    for method, start in [("slp", 3), ("pixel", 1), ("tv", 1)]:
        model = FeatureInversion(method=method, layer="conv2", weights="random", image_size=64, pyramid_levels=3)
        model.set_targets(image, ["chelsea"])
        assert model.finest_on.tolist() == [start]
        I_r, I_in = model.image_model()
        assert torch.equal(I_r, I_in) == (method != "slp")
    with pytest.raises(ValueError, match="valid methods: slp, pixel, tv"):
        FeatureInversion(method="magic", weights="random")


def test_n_f_reference_set_for_a_single_target(tmp_path: Path, photos: Path) -> None:
    image = load_image(str(photos / "coffee.png"), 64)[None]
    builtin = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3)
    builtin.set_targets(image, ["coffee"])
    folder = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3,
                              reference_images=str(photos))  # fmt: skip
    folder.set_targets(image, ["coffee"])
    assert builtin.n_f > 0 and folder.n_f > 0 and builtin.n_f != pytest.approx(folder.n_f)
    targets = torch.stack([load_image(str(p), 64) for p in sorted(photos.glob("*.png"))])
    own = FeatureInversion(layer="conv1", weights="random", image_size=64, pyramid_levels=3)
    own.set_targets(targets, ["a", "b", "c"])
    assert own.n_f == pytest.approx(folder.n_f)  # the folder holds the same three photographs


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
