"""Feature visualisation (objectives/, transforms.py, visualisation.py, methods/joint_pyramid.py):
what each objective measures and refuses, a visualisation run's outputs and atlas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from slp_lightning import FeatureInversion
from slp_lightning.cli.commands import main
from slp_lightning.errors import ArgumentError
from slp_lightning.maths.schedule import ConvergenceRule, SwitchSchedule
from slp_lightning.maths.transforms import build_transforms
from slp_lightning.objectives import build_objective

from helpers import CLASSIFIER_SOURCE, refused

FEATURES = torch.rand(3, 8, 5, 5, generator=torch.Generator().manual_seed(0))


def test_each_term_measures_its_unit_and_terms_add_with_weights(tmp_path: Path) -> None:
    shape = FEATURES.shape[1:]
    channel = build_objective("channel:2", shape, rows=3).activation(FEATURES)
    assert torch.allclose(channel, FEATURES[:, 2].mean(dim=(1, 2)))
    neuron = build_objective("neuron:2", shape, rows=3).activation(FEATURES)
    assert torch.equal(neuron, FEATURES[:, 2, 2, 2])
    torch.save(torch.eye(8)[2], tmp_path / "v.pt")
    direction = build_objective(f"direction:{tmp_path / 'v.pt'}", shape, rows=3).activation(
        FEATURES
    )
    assert torch.allclose(direction, channel)  # the direction of channel 2 is channel 2
    rows = build_objective(["channel:1", "2*channel:3 + channel:1", "diversity:0.5"], shape)
    value = rows.activation(FEATURES)
    assert torch.allclose(
        value[:2],
        torch.stack([FEATURES[0, 1].mean(), 2 * FEATURES[1, 3].mean() + FEATURES[1, 1].mean()]),
    )
    assert (
        value[2] < 0
        and rows.spec(1) == "2*channel:3 + channel:1"
        and rows.spec(2) == "0.5*diversity"
    )
    logits = torch.tensor([[1.0, 5.0, 2.0]])
    assert build_objective("class:1", (3,), rows=1).loss(logits).item() == -5.0  # minimised


@pytest.mark.parametrize(
    ("spec", "shape", "message"),
    [
        ("glow:3", (8, 5, 5), r"unknown objective 'glow:3'; valid: inversion, channel:C, neuron:C"),
        ("channel:8", (8, 5, 5), r"channel:8: the layer has 8 channels \(0 to 7\)"),
        ("channel:x", (8, 5, 5), "'x' is no number"),
        ("channel", (8, 5, 5), "objective channel needs its C"),
        ("channel:1.5", (8, 5, 5), "C is an index"),
        ("class:5", (5,), r"class:5: the output has 5 classes \(0 to 4\)"),
        (
            "class:1",
            (8, 5, 5),
            r"class:1 needs the model's logits, \(classes,\) per image; the layer gives \(8, 5, 5\)",
        ),
        ("neuron:1", (8,), r"neuron needs features \(C, H, W\)"),
        ("direction:nowhere.pt", (8, 5, 5), "no such file"),
    ],
)
def test_a_bad_objective_is_one_sentence(spec: str, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        build_objective(spec, shape)


def test_a_maximised_activation_converges_though_its_loss_is_negative() -> None:
    rule = ConvergenceRule(rel_tol=1e-3, patience=3, min_steps=2, final_patience=3)
    schedule = SwitchSchedule(1, 1)
    for step, loss in enumerate([-1.0, -2.0, -2.5, -2.501, -2.5015, -2.5016, -2.5016]):
        rule.converged(schedule, torch.tensor([loss]), step, 100)
    assert schedule.done.item()  # stalled below a relative 1e-3 for 3 steps: done
    fresh = SwitchSchedule(1, 1)
    for step, loss in enumerate([-1.0, -2.0, -4.0, -8.0, -16.0, -32.0]):
        rule.converged(fresh, torch.tensor([loss]), step, 100)
    assert not fresh.done.item()  # still rising


def test_the_transforms_are_seeded_differentiable_and_lucids_by_name() -> None:
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    first, again = build_transforms("lucid", seed=3), build_transforms("lucid", seed=3)
    out = first(images)
    assert out.shape == (2, 3, 32 + 24 - 12, 32 + 24 - 12) and torch.equal(out, again(images))
    out.sum().backward()
    assert images.grad.abs().sum() > 0
    assert not torch.equal(first(images), out)  # a new draw each step
    assert build_transforms("none") is None and build_transforms(None) is None
    with pytest.raises(ArgumentError, match="unknown transform 'blur:3'"):
        build_transforms(["blur:3"])


def test_a_channel_visualisation_raises_its_activation_with_each_parametrisation() -> None:
    for method in ["slp", "pixel", "fft", "joint_pyramid"]:
        model = FeatureInversion(method=method, layer="conv2", weights="random", image_size=32, pyramid_levels=2,
                                 objective="channel:5")  # fmt: skip
        model.set_visualisation(["a", "b"], ["channel:5", "channel:7"])
        model.schedule.finest_on.fill_(1)  # every level on
        start = model.inversion.evaluate()["activation"]
        optimizer = model.configure_optimizers()
        for _ in range(15):
            optimizer.zero_grad()
            model.inversion.losses(model.schedule.finest_on)[2].sum().backward()
            optimizer.step()
        assert (model.inversion.evaluate()["activation"] > start + 0.01).all(), method


@pytest.mark.slow
def test_a_class_visualisation_writes_its_rows_and_what_an_independent_classifier_sees(
    tmp_path: Path, photos: Path
) -> None:
    (tmp_path / "colour.py").write_text(CLASSIFIER_SOURCE)
    classifier = [
        f"--eval.classifier={tmp_path / 'colour.py'}:ColourClassifier",
        "--eval.features_layer=pool",
    ]
    main(["fit", f"--model.network={tmp_path / 'colour.py'}:ColourClassifier", "--model.layer=fc",
          "--model.objective=[class:0, class:2]", "--data.seeds=2", "--model.image_size=16",
          "--model.pyramid_levels=2", "--trainer.max_steps=40", "--trainer.enable_progress_bar=false",
          f"--trainer.default_root_dir={tmp_path / 'logs'}", *classifier,
          f"--outputs.natural_images={photos}", "--outputs.strongest=2"])  # fmt: skip
    run = next((tmp_path / "logs").glob("*/version_0"))
    results = json.loads((run / "results.json").read_text())
    rows = results["images"]
    assert [r["name"] for r in rows] == [
        "class_0_seed0",
        "class_0_seed1",
        "class_2_seed0",
        "class_2_seed1",
    ]
    assert [r["objective"] for r in rows] == ["class:0", "class:0", "class:2", "class:2"]
    for row in rows:
        png = Image.open(run / row["png"]).convert("RGB")
        red, _, blue = (sum(png.getdata(band=b)) for b in range(3))
        assert (red > blue) == (row["objective"] == "class:0")  # red is class 0, blue class 2
        assert row["semantic"]["intended_top1"] is True and row["natural_best"] is not None
    assert results["mean_transfer_top1"] == 1.0 and results["objective"] == ["class:0", "class:2"]
    sheet = Image.open(run / "sheet.png")
    assert (
        sheet.width > 3 * 16 and sheet.height > 4 * 16
    )  # a row per visualisation, 2 photographs beside


@pytest.mark.slow
def test_a_bad_visualisation_is_one_line_before_any_step(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["fit", "--model.weights=random", "--model.layer=conv5", "--model.image_size=64", "--model.pyramid_levels=2",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    cases = [
        (["--model.objective=class:3"], "class:3 needs the model's logits"),
        (["--model.objective=channel:300"], "the layer has 256 channels"),
        (["--model.objective=wobble"], "unknown --model.objective 'wobble'"),
        (
            ["--model.objective=channel:1", "--model.method=tv"],
            "method tv normalises its data term",
        ),
        (
            ["--model.objective=channel:1", "--model.defence=noise:0.1"],
            "a visualisation sends no features",
        ),
        (
            ["--model.objective=channel:1", "--model.transforms=[spin:3]"],
            "unknown transform 'spin:3'",
        ),
        (
            ["--model.objective=channel:1", f"--data.images={photos}"],
            "a visualisation starts from noise",
        ),
        (["--data.seeds=0"], "--data.seeds must be an integer >= 1"),
    ]
    for flags, message in cases:
        assert message in refused(capsys, [*base, *flags]), flags
    assert not any(tmp_path.iterdir())
