"""The leakage audit end to end: defended features inverted by attackers who know the defence or
not, through the victim's network or a stand-in, with the task's utility beside the leakage
(threat.py, utility.py, privacy_utility.py, the sweep's audit axes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from slp_lightning import FeatureInversion
from slp_lightning.cli.commands import main
from slp_lightning.data.images import BUILTIN_REFERENCES, reference_images
from slp_lightning.defences import build_defence
from slp_lightning.inversion.utility import task_agreement
from slp_lightning.networks import build_feature_network

from helpers import CLASSIFIER_SOURCE, refused, short_inversion


def colour_model(tmp_path: Path) -> list[str]:
    """A tiny classifier with a head (helpers.CLASSIFIER_SOURCE), inverted at its first layer."""
    (tmp_path / "colour.py").write_text(CLASSIFIER_SOURCE)
    return [
        f"--model.network={tmp_path / 'colour.py'}:ColourClassifier", "--model.layer=conv",
        "--model.image_size=16", "--model.pyramid_levels=2", "--trainer.max_steps=8",
        "--trainer.enable_progress_bar=false", "--switch.min_steps=2", "--switch.max_steps_per_level=3",
    ]  # fmt: skip


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "summary.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_an_audit_sweep_reports_utility_and_leakage_for_each_defence_and_knowledge(
    tmp_path: Path, photos: Path
) -> None:
    main(["fit", *colour_model(tmp_path), f"--data.images={photos}", f"--trainer.default_root_dir={tmp_path}",
          "--sweep.methods=[slp, pixel]", "--sweep.defences=[none, noise:1.0, quantise:1, topk:0.05]",
          "--sweep.defence_aware=[true, false]"])  # fmt: skip
    run_dir = next(tmp_path.glob("*_sweep/version_0"))
    table = rows(run_dir)
    assert len(table) == 2 * (1 + 3 * 2)  # none is one job per method: nothing to know
    assert {r["defence"] for r in table} == {"none", "noise:1", "quantise:1", "topk:0.05"}
    assert all(r["mean_utility"] != "" for r in table)
    assert {r["mean_utility"] for r in table if r["defence"] == "none"} == {"1.0"}  # exactly
    assert {(r["defence"], r["defence_aware"]) for r in table if r["method"] == "pixel"} >= {
        ("quantise:1", "True"), ("quantise:1", "False"),
    }  # fmt: skip
    assert all(r["mean_victim_normalized_error"] != "" for r in table if r["defence"] != "none")
    assert (run_dir / "privacy_utility.png").stat().st_size > 10_000
    summary = (run_dir / "summary.md").read_text()
    assert "**Audit at conv: PSNR against the photograph (dB)" in summary
    assert (
        "| defence | utility | slp aware | slp unaware | pixel aware | pixel unaware |" in summary
    )
    results = json.loads((run_dir / "slp_quantise1_unaware_conv" / "results.json").read_text())
    assert results["threat"]["spec"] == "quantise:1" and results["threat"]["defence_aware"] is False
    assert results["utility"].startswith(
        "the victim model's top-1 class with the observed features"
    )
    assert all(isinstance(image["utility_top1_agreement"], bool) for image in results["images"])


def test_knowing_the_quantisation_is_worth_something_on_a_tiny_problem() -> None:
    """A 1-bit quantised layer: the attacker who reads each level as a bin ends closer to the
    clean features than the one who takes the levels at face value."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    errors = {}
    for aware in (True, False):
        model = FeatureInversion(
            method="pixel", layer="conv1", weights="random", image_size=16, pyramid_levels=1,
            defence="quantise:1", defence_aware=aware,
        )  # fmt: skip
        losses = short_inversion(model, images, steps=60)
        assert losses[-1] < losses[0]
        errors[aware] = model.inversion.evaluate()["victim_normalized_error"].mean().item()
    assert errors[True] < 0.8 * errors[False], errors


@pytest.mark.slow
def test_a_stand_in_network_inverts_the_victims_features(tmp_path: Path, photos: Path) -> None:
    main(["fit", *colour_model(tmp_path), f"--data.images={photos / 'coffee.png'}", "--model.defence=none",
          "--model.attacker_weights=random", f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    threat = results["threat"]
    assert "random" in threat["attacker_network"] and "random" not in threat["victim_network"]
    assert results["mean_victim_normalized_error"] is not None and results["mean_utility"] == 1.0


def test_a_defence_that_changes_the_features_shape_is_attacked_knowing_it_or_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def pool(features: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(features, 3)

    model = FeatureInversion(
        layer="conv2", weights="random", image_size=32, pyramid_levels=2, defence=pool
    )
    losses = short_inversion(model, torch.rand(2, 3, 32, 32), steps=12)
    assert model.inversion.observed.shape[-2:] == (1, 1) and losses[-1] < losses[0]
    assert model.utility is None and model.utility_about.startswith(
        "the defence changes the features' shape"
    )
    (tmp_path / "pooling.py").write_text(
        "import torch\n\ndef pool(f):\n    return torch.nn.functional.avg_pool2d(f, 3)\n"
    )
    line = refused(capsys, ["fit", "--model.weights=random", "--model.layer=conv2", "--model.image_size=32",
                            "--model.pyramid_levels=2", f"--model.defence={tmp_path / 'pooling.py'}:pool",
                            "--model.defence_aware=false",
                            f"--trainer.default_root_dir={tmp_path / 'logs'}"])  # fmt: skip
    assert line.startswith("error: defence ") and "give --model.defence_aware true" in line
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--model.defence=noise:-1"], "--model.defence (noise:SIGMA"),
        (["--model.defence=quantise:0"], "--model.defence (quantise:BITS"),
        (["--model.defence=topk:1.5"], "--model.defence (topk:KEEP"),
        (["--model.defence=shuffle:0.5"], "unknown --model.defence 'shuffle:0.5'"),
        (
            ["--model.defence=noise:0.1", "--model.defence_args={bits: 2}"],
            "--model.defence_args: noise takes no bits",
        ),
        (["--sweep.defences=[none, quantise:0]"], "--sweep.defences: "),
        (["--model.attacker_network=torchvision", "--model.attacker_layer=features.1"], "error: "),
    ],
)
def test_a_bad_audit_setting_is_one_line_before_any_step(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    line = refused(capsys, ["fit", "--model.weights=random", "--model.layer=conv2", "--model.image_size=32",
                            "--model.pyramid_levels=2", f"--trainer.default_root_dir={tmp_path}", *flags])  # fmt: skip
    assert named in line, line
    assert not any(tmp_path.iterdir())


def test_the_task_keeps_every_class_with_its_own_features_and_not_with_zeros() -> None:
    network = build_feature_network("torchvision", "features.4", "random", arch="mobilenet_v2")
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    clean = network(images)
    agreement, about = task_agreement(network, images, clean, clean.clone())
    assert agreement.tolist() == [1.0] * 4 and about.startswith("the victim model's top-1 class")
    noisy = clean + 5 * clean.std() * torch.randn(
        clean.shape, generator=torch.Generator().manual_seed(1)
    )
    assert task_agreement(network, images, clean, noisy)[0].mean() < 1
    alexnet = build_feature_network("alexnet", "conv2", "random")
    assert task_agreement(alexnet, images, clean, clean)[0] is None
    assert (
        "built up to conv2 only, with no head" in task_agreement(alexnet, images, clean, clean)[1]
    )


def test_a_defence_object_is_reused_by_a_sweeps_jobs() -> None:
    defence = build_defence("dropout:0.3", {"rescale": False})
    model = FeatureInversion(
        layer="conv2", weights="random", image_size=32, pyramid_levels=2, defence=defence
    )
    job = model.with_settings(layer="conv1")
    assert (
        job.inversion.threat.defence is defence
        and job.settings()["threat"]["spec"] == "dropout:0.3"
    )
    assert model.hparams["defence"] == "dropout:0.3"


def test_the_attacker_calibrates_on_photographs_that_are_not_the_targets() -> None:
    assert len(reference_images(None, 16)) == len(BUILTIN_REFERENCES)
    assert (
        len(reference_images(None, 16, exclude=("astronaut", "coffee")))
        == len(BUILTIN_REFERENCES) - 2
    )
    model = FeatureInversion(
        layer="conv2", weights="random", image_size=32, pyramid_levels=2, defence="topk:0.1"
    )
    model.set_targets(torch.rand(1, 3, 32, 32), ["astronaut"])
    assert model.inversion.threat.defence.dropped_means is not None  # calibrated at the start
    unaware = FeatureInversion(layer="conv2", weights="random", image_size=32, pyramid_levels=2,
                               defence="topk:0.1", defence_aware=False)  # fmt: skip
    unaware.set_targets(torch.rand(1, 3, 32, 32), ["astronaut"])
    assert unaware.inversion.threat.defence.dropped_means is None
