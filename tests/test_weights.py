"""Weights files from elsewhere: renamed keys, checkpoints, partial files, bad files; CRAFT's."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from torchvision.models import AlexNet_Weights, alexnet

from slp_lightning.cli.commands import main
from slp_lightning.networks import build_feature_network
from slp_lightning.networks.state_dicts import map_keys
from slp_lightning.networks.torchvision_weights import cached_weights_path
from slp_lightning.networks.weights import RandomWeightsWarning

from helpers import tiny_args

State = dict[str, torch.Tensor]
UP_TO_CONV2 = ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"]


@pytest.fixture(scope="module")
def state() -> State:
    """A full AlexNet state dict that differs from the seeded random network."""
    torch.manual_seed(3)
    return alexnet().state_dict()


def _save(obj: object, path: Path) -> str:
    torch.save(obj, path)
    return str(path)


def _assert_loaded(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    assert torch.equal(net.body[1].weight, state["features.0.weight"])  # body[0] normalises
    assert torch.equal(net.body[4].bias, state["features.3.bias"])


def test_map_applies_every_rule_in_order_to_every_key() -> None:
    tensor = torch.zeros(1)
    mapped = map_keys({"module.a.0": tensor, "b": tensor}, {r"^module\.": "", r"^a\.": "features."})
    assert list(mapped) == ["features.0", "b"]


def test_map_rejects_a_bad_regex_and_keys_that_collide() -> None:
    with pytest.raises(ValueError, match=r"'\(' is not a regular expression"):
        map_keys({"a": torch.zeros(1)}, {"(": ""})
    with pytest.raises(ValueError, match="renames two keys to 'x'"):
        map_keys({"a": torch.zeros(1), "b": torch.zeros(1)}, {"^[ab]$": "x"})


def test_dataparallel_prefix_is_mapped_away(state: State, tmp_path: Path) -> None:
    path = _save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    net = build_feature_network("alexnet", "conv2", path, weights_map={r"^module\.": ""})
    _assert_loaded(net, state)
    assert net.weights == f"{path} (4 tensors used, 12 unused keys)"


@pytest.mark.slow
def test_lightning_checkpoint_is_unwrapped_and_mapped(state: State, tmp_path: Path) -> None:
    checkpoint = {
        "epoch": 3, "global_step": 10, "pytorch-lightning_version": "2.5.0",
        "hyper_parameters": {"lr": 0.1}, "state_dict": {f"model.{k}": v for k, v in state.items()},
    }  # fmt: skip
    path = _save(checkpoint, tmp_path / "run.ckpt")
    net = build_feature_network("alexnet", "conv2", path, weights_map={r"^model\.": ""})
    _assert_loaded(net, state)


def test_a_file_with_only_the_layers_up_to_the_inverted_one_loads(
    state: State, tmp_path: Path
) -> None:
    path = _save({k: state[k] for k in UP_TO_CONV2}, tmp_path / "part.pth")
    net = build_feature_network("alexnet", "relu2", path)
    _assert_loaded(net, state)
    assert net.weights == f"{path} (4 tensors used, 0 unused keys)"


def test_missing_needed_keys_are_named_with_the_files_keys_and_the_remedy(
    state: State, tmp_path: Path
) -> None:
    path = _save({f"module.{k}": state[k] for k in UP_TO_CONV2}, tmp_path / "part.pth")
    with pytest.raises(ValueError) as error:
        build_feature_network("alexnet", "conv3", path)
    message = str(error.value)
    assert "missing features.0.weight, features.0.bias" in message
    assert "(6 of the 6 tensors needed up to this layer)" in message
    assert "it has module.features.0.weight" in message and "--model.weights_map" in message
    path = _save({k: state[k] for k in UP_TO_CONV2}, tmp_path / "part.pth")
    with pytest.raises(ValueError, match=r"missing features\.6\.weight, features\.6\.bias \(2 of"):
        build_feature_network("alexnet", "conv3", path)


def test_a_shape_mismatch_names_the_key_and_both_shapes(state: State, tmp_path: Path) -> None:
    path = _save({**state, "features.3.weight": torch.zeros(192, 64, 3, 3)}, tmp_path / "bad.pth")
    shapes = r"features\.3\.weight has shape \(192, 64, 3, 3\), expected \(192, 64, 5, 5\)"
    with pytest.raises(ValueError, match=shapes):
        build_feature_network("alexnet", "conv2", path)


def test_weights_with_a_nan_or_infinity_are_refused_unless_the_layer_never_uses_them(
    state: State, tmp_path: Path
) -> None:
    part = {k: state[k].clone() for k in [*UP_TO_CONV2, "features.6.weight"]}
    part["features.3.weight"][0, 0, 0, 0] = float("nan")
    part["features.3.bias"][1] = -float("inf")
    part["features.6.weight"][0, 0, 0, 0] = float("inf")  # conv3's: conv2 never reads it
    path = _save(part, tmp_path / "nan.pth")
    with pytest.raises(ValueError) as error:
        build_feature_network("alexnet", "conv2", path)
    assert str(error.value) == (
        f"cannot load AlexNet weights {path}: features.3.weight, features.3.bias hold NaN or "
        f"infinite values (2 of the 4 tensors needed up to this layer); accepted: finite weights only"
    )
    part["features.3.weight"], part["features.3.bias"] = (
        state["features.3.weight"],
        state["features.3.bias"],
    )
    net = build_feature_network("alexnet", "conv2", _save(part, tmp_path / "fine.pth"))
    _assert_loaded(net, state)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"conv1.weight = [1, 2, 3]\n", "cannot read weights"),
        (random.Random(0).randbytes(512), "cannot read weights"),
        (b"", "cannot read weights"),
        ([1, 2, 3], "holds a list, not a state dict"),
        (torch.nn.Linear(2, 2), "cannot read weights"),  # a whole module: not weights-only
        ({"epoch": 3, "model": {"w": torch.zeros(1)}}, "'epoch', 'model'|epoch, model"),
    ],
    ids=["text", "random-bytes", "empty", "list", "module", "nested-dict"],
)
def test_files_that_are_not_state_dicts_fail_in_one_sentence(
    content: object, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=message) as error:
        build_feature_network("alexnet", "conv1", str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert error.value.__cause__ is None  # no unpickling traceback chained to it


@pytest.mark.slow
def test_cli_takes_a_json_weights_map(state: State, tmp_path: Path, photos: Path) -> None:
    path = _save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    main(tiny_args(
        tmp_path, photos / "coffee.png", "--trainer.max_steps=2",
        f"--model.weights={path}", '--model.weights_map={"^module\\\\.": ""}',
    ))  # fmt: skip
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert results["weights"] == f"{path} (4 tensors used, 12 unused keys)"


# ------------------------------------------------------------------ weights specs (AlexNet)


def test_random_weights_are_seeded_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_feature_network("alexnet", "conv1", "random")
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_feature_network("alexnet", "conv1", "random")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.weights == "random (seed 0)"


def _write_fake_pretrained(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = alexnet().state_dict()
    path = cached_weights_path(AlexNet_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.mark.slow
def test_auto_and_strict_load_the_cached_torchvision_file() -> None:
    state = _write_fake_pretrained(seed=7)
    for spec in ["auto", "IMAGENET1K_V1"]:
        net = build_feature_network("alexnet", "conv1", spec)
        assert net.weights == "AlexNet IMAGENET1K_V1"
        assert torch.equal(net.body[1].weight, state["features.0.weight"])


def test_auto_without_weights_warns_loudly_and_uses_the_seeded_random_network() -> None:
    with pytest.warns(RandomWeightsWarning, match="RANDOM network") as warned:
        net = build_feature_network("alexnet", "conv1", "auto")
    assert net.weights == "random (seed 0)"
    assert "--model.network craft_vgg16_bn" in str(warned[0].message)  # the offline trained one


def test_strict_pretrained_without_the_file_says_where_to_put_it() -> None:
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth"):
        build_feature_network("alexnet", "conv1", "IMAGENET1K_V1")


@pytest.mark.slow
def test_local_state_dict_file(tmp_path: Path) -> None:
    torch.manual_seed(3)
    state = alexnet().state_dict()
    torch.save(state, tmp_path / "mine.pth")
    net = build_feature_network("alexnet", "conv1", str(tmp_path / "mine.pth"))
    assert net.weights == f"{tmp_path / 'mine.pth'} (2 tensors used, 14 unused keys)"
    assert torch.equal(net.body[1].weight, state["features.0.weight"])


def test_bad_weights_spec_lists_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="expected 'auto', 'random'"):
        build_feature_network("alexnet", "conv1", "/no/such/file.pth")


# ------------------------------------------------------------------ craft_vgg16_bn


def _craft_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vgg16_bn ``features.N.*`` keys as CRAFT stores them, plus keys of CRAFT's own layers."""

    def craft_key(key: str) -> str:  # features.N.x -> module.basenet.sliceS.N.x
        index = key.split(".")[1]
        slice_ = 1 + sum(int(index) >= start for start in (12, 19, 29))
        return f"module.basenet.slice{slice_}.{key.removeprefix('features.')}"

    return {
        **{craft_key(k): v for k, v in state.items()},
        "module.basenet.slice5.1.weight": torch.zeros(1024, 512, 3, 3),
        "module.upconv1.conv.0.weight": torch.zeros(512, 1536, 1, 1),
    }


def test_craft_layout_file_loads_with_the_built_in_map(tmp_path: Path) -> None:
    body = build_feature_network("craft_vgg16_bn", "relu5_2", "random").body  # body[0] normalises
    state = {  # the seeded network's features.N, changed so loading them shows
        f"features.{int(index) - 1}.{name}": value + 1
        for key, value in body.state_dict().items()
        for index, name in [key.split(".", 1)]
    }
    path = _save(_craft_layout(state), tmp_path / "craft.pth")
    net = build_feature_network("craft_vgg16_bn", "relu3_3", path)
    assert torch.equal(net.body[21].weight, state["features.20.weight"])  # conv3_3
    assert torch.equal(net.body[22].running_var, state["features.21.running_var"])  # bn3_3
    assert net.weights == f"{path} (49 tensors used, 37 unused keys)"
    # A torchvision-layout file needs no map: an empty one replaces the built-in map.
    path = _save(state, tmp_path / "vgg16_bn.pth")
    net = build_feature_network("craft_vgg16_bn", "conv1_1", path, weights_map={})
    assert torch.equal(net.body[1].weight, state["features.0.weight"])


def test_craft_auto_loads_the_trained_file_of_the_extra() -> None:
    pytest.importorskip("easyocr_en_models")
    from slp_lightning.networks.craft import weights_file

    net = build_feature_network("craft_vgg16_bn", "conv1_1", "auto")
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    assert torch.equal(net.body[1].weight, state["module.basenet.slice1.0.weight"])
    assert net.weights == (
        "CRAFT text detector (craft_mlt_25k.pth): VGG16-BN backbone fine-tuned for text"
    )


def test_craft_auto_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "easyocr_en_models", None)  # makes the import fail
    with pytest.raises(ModuleNotFoundError, match=r'pip install "slp_lightning\[trained\]"'):
        build_feature_network("craft_vgg16_bn", "relu3_3", "auto")
    assert build_feature_network("craft_vgg16_bn", "conv1_1", "random").weights == "random (seed 0)"
