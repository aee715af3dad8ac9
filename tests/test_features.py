"""Features as targets: write the features of images, invert them from the file alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slp_lightning.cli import command, main
from slp_lightning.features import TARGET_FEATURES, read_features, write_features

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
