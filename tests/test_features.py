"""Features as targets: write the features of images, invert them from the file alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slp_lightning.cli.commands import command, main
from slp_lightning.data import features as features_module
from slp_lightning.data.features import TARGET_FEATURES, read_features, write_features

from helpers import tiny_args


def results(root: Path) -> dict:
    return json.loads(next(root.glob("*/version_0/results.json")).read_text())


@pytest.mark.slow
def test_round_trip_images_to_features_file_to_reconstruction(tmp_path: Path, photos: Path) -> None:
    main(
        tiny_args(
            tmp_path / "images",
            photos,
            "--outputs.save_target_features=true",
            "--trainer.max_steps=30",
        )
    )
    from_images = results(tmp_path / "images")
    file = next((tmp_path / "images").glob(f"*/version_0/{TARGET_FEATURES}"))
    names, features = read_features(file)
    assert names == ["astronaut", "chelsea", "coffee"] and features[:].shape == (
        3,
        192,
        7,
        7,
    )  # conv2 at 64 px

    main(tiny_args(tmp_path / "features", "", f"--data.features={file}", "--trainer.max_steps=30"))
    from_features = results(tmp_path / "features")
    assert [i["name"] for i in from_features["images"]] == names
    for a, b in zip(
        from_images["images"], from_features["images"]
    ):  # same seed, same N_f: same run
        assert b["normalized_error"] == pytest.approx(a["normalized_error"], rel=1e-5)
        assert b["psnr"] is None and b["ssim"] is None  # no ground truth
    assert from_features["mean_psnr"] is None
    assert (next((tmp_path / "features").glob("*/version_0")) / "sheet.png").exists()

    # With the images as ground truth, PSNR comes back, matched by name.
    main(tiny_args(tmp_path / "truth", photos, f"--data.features={file}", "--trainer.max_steps=30"))
    assert results(tmp_path / "truth")["mean_psnr"] == pytest.approx(
        from_images["mean_psnr"], rel=1e-5
    )


def test_feature_files_of_every_format_and_their_errors(tmp_path: Path) -> None:
    features = torch.rand(3, 4, 3, 3)
    write_features(tmp_path / "f.pt", ["a", "b", "c"], features)
    names, rows = read_features(tmp_path / "f.pt")
    assert (
        names == ["a", "b", "c"]
        and rows.shape == (3, 4, 3, 3)
        and torch.equal(rows[1:3], features[1:3])
    )
    np.save(tmp_path / "f.npy", features.numpy())
    torch.save(features.double(), tmp_path / "tensor.pt")
    torch.save(
        features, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False
    )  # cannot be mapped
    for file in ("f.npy", "tensor.pt", "legacy.pt"):
        names, rows = read_features(tmp_path / file)
        assert names == ["feature_0", "feature_1", "feature_2"] and len(rows) == 3
        assert rows[1:].dtype == torch.float32 and torch.allclose(rows[1:], features[1:])
    (tmp_path / "bad.pt").write_text("not a tensor")
    with pytest.raises(ValueError, match="not a tensor or a dict of tensors"):
        read_features(tmp_path / "bad.pt")
    torch.save({"a": torch.rand(3), "b": torch.rand(4)}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match="all of one shape"):
        read_features(tmp_path / "mixed.pt")


def test_features_of_another_shape_are_refused_with_both_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_features(tmp_path / "f.pt", ["a"], torch.rand(1, 64, 7, 7))
    with pytest.raises(SystemExit) as stop:
        command(tiny_args(tmp_path / "run", "", f"--data.features={tmp_path / 'f.pt'}"))
    assert stop.value.code == 2
    message = (
        "the features are (64, 7, 7) per target, but alexnet conv2 gives (192, 7, 7) at 64x64 px"
    )
    assert message in capsys.readouterr().err


def _save(path: Path, values: object) -> Path:
    """``values`` into ``path`` in the format its suffix names; bytes as they are."""
    if isinstance(values, bytes):
        path.write_bytes(values)
    elif path.suffix == ".npy":
        np.save(path, values)
    elif path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(values, path)
    else:
        torch.save(values, path)
    return path


def _poisoned(value: float, row: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    features = torch.rand(6, 4, 3, 3, dtype=dtype)
    features[row, 2, 1, 0] = value
    return features


@pytest.mark.parametrize(
    ("file", "values", "target"),
    [
        ("nan.pt", _poisoned(float("nan"), 0), "'feature_0' (row 0)"),
        ("inf.npy", _poisoned(float("inf"), 4).numpy(), "'feature_4' (row 4)"),
        ("big.pt", _poisoned(3e39, 5, torch.float64), "'feature_5' (row 5)"),  # inf once float32
        ("named.safetensors", dict(zip("abcdef", _poisoned(-float("inf"), 3))), "'d' (row 3)"),
    ],
    ids=["nan-pt", "inf-npy", "overflow-pt", "neg-inf-safetensors"],
)
def test_features_with_a_nan_or_infinity_are_refused_naming_the_target(
    file: str, values: object, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features_module, "SCAN_ELEMENTS", 2 * 36)  # two rows at a time
    path = _save(tmp_path / file, values)
    with pytest.raises(ValueError) as error:
        read_features(path)
    assert str(error.value) == (
        f"features file {path}: target {target} holds NaN or infinite values; accepted: finite "
        f"numbers only"
    )


@pytest.mark.parametrize(
    ("file", "values"),
    [
        ("rows.npy", np.zeros((0, 4, 3, 3), np.float32)),
        ("rows.pt", torch.zeros(0, 4, 3, 3)),
        ("dict.pt", {}),
        ("dict.safetensors", {}),
    ],
)
def test_a_features_file_without_rows_is_refused(file: str, values: object, tmp_path: Path) -> None:
    path = _save(tmp_path / file, values)
    with pytest.raises(ValueError) as error:
        read_features(path)
    assert str(error.value) == (
        f"features file {path} holds no targets (0 rows); accepted: one row per target, at least one"
    )


@pytest.mark.parametrize(
    ("file", "values", "message"),
    [
        ("empty.npy", b"", r"is not an array saved by numpy.save \(No data left in file\)"),
        ("text.npy", b"0.5 0.5\n", "is not an array saved by numpy.save"),
        ("flat.npy", np.zeros(0, np.float32), r"holds an array of shape \(0,\)"),
        ("scalar.npy", np.float32(1), r"holds an array of shape \(\)"),
        ("garbage.safetensors", b"\x10" + bytes(7) + b"{not json}", "is not a safetensors file"),
    ],
    ids=["empty-npy", "text-npy", "1-d-npy", "0-d-npy", "garbage-safetensors"],
)
def test_files_that_are_no_features_are_one_sentence(
    file: str, values: object, message: str, tmp_path: Path
) -> None:
    path = _save(tmp_path / file, values)
    with pytest.raises(ValueError, match=message) as error:
        read_features(path)
    assert str(error.value).startswith(f"features file {path} ") and "accepted: " in str(
        error.value
    )
    assert "\n" not in str(error.value) and error.value.__cause__ is None


def test_safetensors_without_the_package_says_what_else_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "f.safetensors", {"a": torch.rand(4, 3, 3)})
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors fails as if absent
    with pytest.raises(ValueError) as error:
        read_features(path)
    assert str(error.value) == (
        f"features file {path} is a .safetensors file, which needs the safetensors package (pip "
        f"install safetensors); accepted without it: .pt, .pth, .npy"
    )


def test_nan_features_end_the_command_line_in_one_line_before_any_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _save(tmp_path / "nan.npy", _poisoned(float("nan"), 1).numpy())
    with pytest.raises(SystemExit) as stop:
        command(tiny_args(tmp_path / "run", "", f"--data.features={path}"))
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: features file {path}: target 'feature_1' (row 1) holds NaN or infinite values; "
        f"accepted: finite numbers only"
    )
    assert not list((tmp_path / "run").rglob("version_*"))


@pytest.mark.parametrize(
    ("file", "keys"),
    [("ints.pt", [1, "1"]), ("space.pt", ["a", "a "]), ("case.safetensors", ["A", "a"])],
    ids=["1-and-'1'", "trailing-space", "case"],
)
def test_keys_that_would_be_one_targets_name_are_refused_naming_both(
    file: str, keys: list[object], tmp_path: Path
) -> None:
    path = _save(tmp_path / file, {key: torch.rand(4, 3, 3) for key in keys})
    with pytest.raises(ValueError) as error:
        read_features(path)
    first, second = keys
    assert str(error.value).startswith(
        f"features file {path}: the keys {first!r} and {second!r} would name one target"
    )
