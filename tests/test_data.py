from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slp_lightning.data import TargetImages, find_images, load_image


def loaded(spec: str, size: int = 32) -> TargetImages:
    data = TargetImages(spec, image_size=size)
    data.setup("fit")
    return data


def test_folder_file_and_glob(photos: Path) -> None:
    assert loaded(str(photos)).names == ["astronaut", "chelsea", "coffee"]
    assert loaded(str(photos / "coffee.png")).names == ["coffee"]
    assert loaded(str(photos / "c*.png")).names == ["chelsea", "coffee"]


def test_images_are_resized_and_centre_cropped_into_unit_range(photos: Path) -> None:
    targets = loaded(str(photos), size=48).targets
    assert targets.shape == (3, 3, 48, 48) and targets.dtype == torch.float32
    assert 0 <= targets.min() and targets.max() <= 1 and targets.std() > 0.1


def test_builtin_photograph_needs_no_files() -> None:
    data = loaded(None, size=40)
    assert data.names == ["astronaut"] and data.targets.shape == (1, 3, 40, 40)
    with pytest.raises(ValueError, match="no image 'nothing'"):
        loaded("skimage:nothing")


def test_grey_and_rgba_images_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((20, 30), 200, np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(np.full((20, 30, 4), 100, np.uint8)).save(tmp_path / "rgba.png")
    targets = loaded(str(tmp_path), size=16).targets
    assert targets.shape == (2, 3, 16, 16)
    assert torch.allclose(targets[0], torch.tensor(200 / 255))  # grey.png
    assert torch.allclose(targets[1], torch.tensor(100 / 255))  # rgba.png, alpha dropped


def test_duplicate_stems_get_unique_names(tmp_path: Path) -> None:
    for suffix in ["png", "jpg"]:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"a.{suffix}")
    assert loaded(str(tmp_path), size=8).names == ["a", "a_2"]


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file, folder or glob"):
        find_images(str(tmp_path / "nope.png"))
    with pytest.raises(FileNotFoundError, match="no images"):
        find_images(str(tmp_path))


def test_not_an_image_and_truncated_image_are_rejected(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image file"):
        load_image(str(tmp_path / "notes.png"), 32)
    data = (photos / "coffee.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read image .*cut.png"):
        load_image(str(tmp_path / "cut.png"), 32)


def test_dataloader_ticks_once_per_step(photos: Path) -> None:
    data = loaded(str(photos))
    assert len(data.train_dataloader()) > 0
