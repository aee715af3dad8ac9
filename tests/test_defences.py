"""Defences (defences/): what each sends, seeded per target, and what an attacker who knows it
compares; the registry's names, options and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from slp_lightning.defences import DEFENCES, Defence, build_defence, observe_targets, target_seed
from slp_lightning.errors import ArgumentError

# Post-ReLU-like features of 3 targets: (N, C, H, W), a tenth of them exactly zero.
FEATURES = torch.relu(torch.randn(3, 16, 12, 12, generator=torch.Generator().manual_seed(0)) + 0.3)
NAMES = ["a", "b", "c"]


def observed(spec: str, options: dict | None = None, features: Tensor = FEATURES) -> Tensor:
    return observe_targets(build_defence(spec, options), features, NAMES[: len(features)], seed=0)


@pytest.mark.parametrize(
    "spec", ["noise:0.3", "laplace:0.3", "quantise:2", "topk:0.1", "dropout:0.5"]
)
def test_an_observation_is_seeded_per_target_whatever_its_batch(spec: str) -> None:
    defence = build_defence(spec)
    alone = observe_targets(defence, FEATURES[1:2], ["b"], seed=0)
    assert torch.equal(observed(spec)[1:2], alone)  # b's, beside a and c or alone
    assert torch.equal(observed(spec), observed(spec))
    other_seed = observe_targets(defence, FEATURES, NAMES, seed=1)
    assert torch.equal(observed(spec), other_seed) == (spec.startswith(("quantise", "topk")))
    assert target_seed(0, "b") != target_seed(1, "b") != target_seed(0, "c")


def test_none_sends_the_features_themselves() -> None:
    assert observed("none") is FEATURES


@pytest.mark.parametrize(("spec", "unit"), [("noise:0.3", 1.0), ("laplace:0.3", math.sqrt(2))])
@pytest.mark.parametrize("per_channel", [False, True])
def test_noise_is_sigma_times_the_features_spread(
    spec: str, unit: float, per_channel: bool
) -> None:
    noise = observed(spec, {"per_channel": per_channel}) - FEATURES
    dims = (2, 3) if per_channel else (1, 2, 3)
    ratio = noise.std(dim=dims) / FEATURES.std(dim=dims)
    assert ratio.mean().item() == pytest.approx(0.3 * unit, rel=0.05)
    assert noise.mean().abs().item() < 0.02


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantisation_sends_two_to_the_bits_levels_within_half_a_step(per_channel: bool) -> None:
    sent = observed("quantise:2", {"per_channel": per_channel})
    groups = sent.flatten(2) if per_channel else sent.flatten(1)[:, None]
    originals = FEATURES.flatten(2) if per_channel else FEATURES.flatten(1)[:, None]
    for levels, values in zip(groups.flatten(0, 1), originals.flatten(0, 1)):
        assert len(levels.unique()) <= 4
        step = (values.max() - values.min()) / 3
        assert (levels - values).abs().max() <= step / 2 + 1e-6
        assert torch.allclose(
            torch.stack([levels.min(), levels.max()]), torch.stack([values.min(), values.max()])
        )  # the range is sent


def test_topk_keeps_the_largest_share_and_dropout_a_random_one() -> None:
    sent = observed("topk:0.1").flatten(1)
    count = math.ceil(0.1 * sent.shape[1])
    assert ((sent != 0).sum(dim=1) == count).all()
    smallest_kept = sent.abs().where(sent != 0, torch.inf).amin(dim=1)
    dropped = FEATURES.flatten(1).abs().where(sent == 0, torch.zeros(()))
    assert (dropped.amax(dim=1) <= smallest_kept).all()
    for rescale in (True, False):
        kept = observed("dropout:0.5", {"rescale": rescale}).flatten(1)
        nonzero = FEATURES.flatten(1) != 0
        share = ((kept == 0) & nonzero).sum() / nonzero.sum()
        assert share.item() == pytest.approx(0.5, abs=0.03)
        scale = 2.0 if rescale else 1.0
        assert torch.allclose(kept[kept != 0], scale * FEATURES.flatten(1)[kept != 0])


@pytest.mark.parametrize("spec", ["quantise:2", "topk:0.1", "dropout:0.5"])
def test_an_attacker_who_knows_the_defence_finds_the_truth_consistent_and_others_not(
    spec: str,
) -> None:
    defence, sent = build_defence(spec), observed(spec)
    assert defence.discrepancy(FEATURES, sent).max().item() == pytest.approx(0, abs=1e-5)
    # One who takes the observation at face value is pulled away from the truth.
    plain = build_defence("none").discrepancy(FEATURES, sent)
    assert (plain > 1).all()
    far = (FEATURES * 3).requires_grad_()
    distance = defence.discrepancy(far, sent)
    distance.sum().backward()
    assert (distance > 1).all() and torch.isfinite(far.grad).all() and far.grad.abs().sum() > 0


def test_an_attacker_who_knows_the_noise_uses_its_likelihood() -> None:
    sent = observed("laplace:0.3")
    far = FEATURES * 2
    # Gaussian: the plain distance; Laplace: the L1 distance on the L2 scale.
    assert torch.equal(
        build_defence("noise:0.3").discrepancy(far, sent), (far - sent).flatten(1).norm(dim=1)
    )
    l1 = (far - sent).flatten(1).abs().sum(dim=1) / math.sqrt(far[0].numel())
    assert torch.allclose(build_defence("laplace:0.3").discrepancy(far, sent), l1)


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("noise:-0.1", None, r"defence \(noise:SIGMA, .*\) must be a number >= 0; got -0.1"),
        ("quantise:0", None, r"\(quantise:BITS, .*\) must be an integer in \[1, 16\]; got 0"),
        ("quantise:2.5", None, r"must be an integer in \[1, 16\]; got 2.5"),
        ("topk:0", None, r"\(topk:KEEP, .*\) must be a number in \(0, 1\]; got 0"),
        ("topk:1.5", None, r"must be a number in \(0, 1\]; got 1.5"),
        ("dropout:1", None, r"\(dropout:P, .*\) must be a number in \[0, 1\); got 1"),
        ("noise", None, "defence noise needs its sigma: noise:NUMBER"),
        ("none:1", None, "defence none takes no strength"),
        ("noise:x", None, "'x' is no number"),
        (
            "magic:1",
            None,
            r"unknown defence 'magic:1'; valid: none, noise:SIGMA, laplace:SCALE, quantise:BITS",
        ),
        ("noise:0.1", {"bits": 2}, "defence_args: noise takes no bits; its options: per_channel"),
        (
            "topk:0.1",
            {"per_channel": True},
            "defence_args: topk takes no per_channel; its options: none",
        ),
    ],
)
def test_a_bad_defence_is_one_sentence_naming_what_is_accepted(
    spec: str, options: dict | None, message: str
) -> None:
    with pytest.raises(ArgumentError, match=message) as error:
        build_defence(spec, options)
    assert error.value.arguments[0].startswith("FeatureInversion.defence")


def test_per_channel_needs_channels_with_positions() -> None:
    with pytest.raises(ArgumentError, match=r"per_channel needs features \(C, …\)"):
        build_defence("noise:0.1", {"per_channel": True}).check_features((64,))


def test_the_registry_holds_every_defence_by_its_name() -> None:
    assert list(DEFENCES) == ["none", "noise", "laplace", "quantise", "topk", "dropout"]
    assert all(
        issubclass(kind, Defence) and DEFENCES[kind.name] is kind for kind in DEFENCES.values()
    )
    assert build_defence("quantise:4").spec == "quantise:4" and build_defence(None).spec == "none"
    assert build_defence("noise:0.3").describe() == {
        "defence": "noise",
        "strength": 0.3,
        "per_channel": False,
    }


def test_a_callable_of_ones_own_is_a_defence_by_object_or_import_path(tmp_path: Path) -> None:
    def halve(features: Tensor) -> Tensor:
        return features / 2

    defence = build_defence(halve)
    assert defence.spec.endswith("halve") and torch.equal(
        observe_targets(defence, FEATURES, NAMES, 0), FEATURES / 2
    )
    (tmp_path / "mine.py").write_text(
        "import torch\n\ndef jitter(f):\n    return f + torch.randn(f.shape)\n\n"
        "class Scale(torch.nn.Module):\n    def __init__(self, by=3.0):\n        super().__init__()\n"
        "        self.by = by\n\n    def forward(self, f):\n        return f * self.by\n"
    )
    jitter = build_defence(f"{tmp_path / 'mine.py'}:jitter")
    once, again = (observe_targets(jitter, FEATURES, NAMES, 0) for _ in range(2))
    assert torch.equal(once, again) and not torch.equal(once, FEATURES)  # seeded per target
    scale = build_defence(f"{tmp_path / 'mine.py'}:Scale", {"by": 2.0})
    assert torch.equal(observe_targets(scale, FEATURES, NAMES, 0), 2 * FEATURES)
    with pytest.raises(ValueError, match="defence .*:missing.*has no attribute 'missing'"):
        build_defence(f"{tmp_path / 'mine.py'}:missing")


def test_a_calibrated_attacker_reads_each_level_and_each_zero_as_the_mean_it_stands_for() -> None:
    # Calibrated on the features themselves (an oracle): the truth is nearer its own bins' means
    # than the levels are, and the bins' means lie inside the bins.
    quantise = build_defence("quantise:2")
    sent = observed("quantise:2")
    quantise.calibrate(FEATURES)
    assert quantise.means.shape == (16, 4) and ((quantise.means >= 0) & (quantise.means <= 1)).all()
    uncalibrated = build_defence("none").discrepancy(FEATURES, sent)
    assert (quantise.discrepancy(FEATURES, sent) < uncalibrated).all()
    topk = build_defence("topk:0.1")
    topk.calibrate(FEATURES)
    dropped = observed("topk:0.1") == 0
    means = (FEATURES * dropped).sum(dim=(0, 2, 3)) / dropped.sum(dim=(0, 2, 3))
    assert torch.allclose(topk.dropped_means, means) and (means > 0).all()  # post-ReLU: not 0
    sent = observed("topk:0.1")
    assert (
        topk.discrepancy(FEATURES, sent) < build_defence("none").discrepancy(FEATURES, sent)
    ).all()
