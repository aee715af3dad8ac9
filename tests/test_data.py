import json
import re
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from slp_lightning.cli.commands import main
from slp_lightning.data.file_names import name_key
from slp_lightning.data.images import find_images, load_image, unique_names
from slp_lightning.data.targets import STEPS_PER_EPOCH_UNBOUNDED, TargetImages

from helpers import png_claiming, tiny_args


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


def _write(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for value, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), 40 * value, np.uint8)).save(folder / name)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # The stem 'a' twice: the file names. The third file's stem stays, and no moved-on name
        # is another file's: the old numbering gave a, a_2, a_2 and lost a reconstruction.
        (["a.jpg", "a.png", "a_2.png"], ["a.jpg", "a.png", "a_2"]),
        (["a.jpg", "a.png", "a_2.png", "a_2.jpg"], ["a.jpg", "a.png", "a_2.png", "a_2.jpg"]),
        # A file whose stem is another's file name.
        (["a.png", "a.png.png", "a.jpg"], ["a.png", "a.png.png", "a.jpg"]),
        # Case only, and two spellings of é: one file on macOS or Windows, and names that look
        # alike; a hash of the source tells them apart.
        (["A.png", "a.png", "b.png"], ["A.png (·)", "a.png (·)", "b"]),
        (["caf\u00e9.png", "cafe\u0301.png"], ["caf\u00e9.png (·)", "cafe\u0301.png (·)"]),
        # Spaces at the ends, which Windows drops.
        (["a .png", "a.png"], ["a .png", "a.png"]),
    ],
)
def test_every_target_gets_a_name_of_its_own_whatever_the_order(
    files: list[str], expected: list[str], tmp_path: Path
) -> None:
    _write(tmp_path, files)
    sources = [str(tmp_path / f) for f in files]
    names = unique_names(sources)
    assert [re.sub(r"\([0-9a-f]{8}\)", "(·)", n) for n in names] == expected
    assert len({name_key(n) for n in names}) == len(files)  # not even a case-insensitive clash
    assert unique_names(sources[::-1]) == names[::-1]  # the set decides, not the order


def test_the_same_stem_in_two_folders_keeps_the_folder(tmp_path: Path) -> None:
    _write(tmp_path / "x", ["a.png"])
    _write(tmp_path / "y", ["a.png", "b.png"])
    names = unique_names([str(tmp_path / p) for p in ["x/a.png", "y/a.png", "y/b.png"]])
    assert names == ["x/a.png", "y/a.png", "b"]


def test_a_name_clash_loses_no_reconstruction(tmp_path: Path) -> None:
    _write(tmp_path / "photos", ["a.jpg", "a.png", "a_2.png"])
    main(tiny_args(tmp_path / "logs", tmp_path / "photos", "--trainer.max_steps=2",
                   "--model.image_size=32", "--checkpoint.every_n_train_steps=0"))  # fmt: skip
    (run,) = (tmp_path / "logs").glob("*/version_0")
    results = json.loads((run / "results.json").read_text())
    names = [image["name"] for image in results["images"]]
    assert names == ["a.jpg", "a.png", "a_2"]
    pngs = sorted(p.name for p in (run / "reconstructions").glob("*.png") if "_level" not in p.name)
    assert pngs == ["a.jpg.png", "a.png.png", "a_2.png"]
    # Each reconstruction is its own target's: three different pictures.
    pictures = {(run / "reconstructions" / png).read_bytes() for png in pngs}
    assert len(pictures) == 3


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
    data.trainer = SimpleNamespace(max_steps=7)
    assert list(data.train_dataloader()) == list(range(7))
    data.trainer = SimpleNamespace(max_steps=-1)  # no budget: the progress bar's epoch length
    assert len(data.train_dataloader()) == STEPS_PER_EPOCH_UNBOUNDED == 10_000
    assert list(islice(data.train_dataloader(), 3)) == [0, 1, 2]
    data.trainer = None  # outside a Trainer: no budget either
    assert len(data.train_dataloader()) == STEPS_PER_EPOCH_UNBOUNDED


def palette_with_transparency() -> Image.Image:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 51, 102, 153] + [0] * 762)
    image.info["transparency"] = 1
    return image


# Per Pillow mode: an 8x8 image, the file type that holds it, and the RGB it must read as.
MODES = {
    "1": (Image.new("1", (8, 8), 1), "png", (1, 1, 1)),
    "L": (Image.new("L", (8, 8), 51), "png", (0.2, 0.2, 0.2)),
    "LA": (Image.new("LA", (8, 8), (51, 0)), "png", (0.2, 0.2, 0.2)),
    "P": (palette_with_transparency(), "png", (0.2, 0.4, 0.6)),
    "I;16": (Image.new("I;16", (8, 8), 13107), "png", (0.2, 0.2, 0.2)),
    "I": (Image.new("I", (8, 8), 13107), "tiff", (0.2, 0.2, 0.2)),  # 16-bit data in mode I
    "I 8-bit": (Image.new("I", (8, 8), 51), "tiff", (0.2, 0.2, 0.2)),
    "F": (Image.new("F", (8, 8), 0.2), "tiff", (0.2, 0.2, 0.2)),
    "F 8-bit": (Image.new("F", (8, 8), 51.0), "tiff", (0.2, 0.2, 0.2)),
    "RGB": (Image.new("RGB", (8, 8), (51, 102, 153)), "png", (0.2, 0.4, 0.6)),
    "RGBA": (Image.new("RGBA", (8, 8), (51, 102, 153, 0)), "png", (0.2, 0.4, 0.6)),
    "CMYK": (Image.new("CMYK", (8, 8), (204, 153, 102, 0)), "tiff", (0.2, 0.4, 0.6)),
    "YCbCr": (Image.new("RGB", (8, 8), (51, 102, 153)).convert("YCbCr"), "tiff", (0.2, 0.4, 0.6)),
}


@pytest.mark.parametrize("mode", MODES)
def test_every_pillow_mode_reads_as_rgb_by_its_range(mode: str, tmp_path: Path) -> None:
    image, suffix, rgb = MODES[mode]
    path = tmp_path / f"image.{suffix}"
    image.save(path)
    assert Image.open(path).mode == image.mode  # the file kept the mode under test
    pixels = load_image(str(path), 8)
    assert pixels.shape == (3, 8, 8) and pixels.dtype == torch.float32
    # 3/255: YCbCr's round trip through 8 bits rounds by up to 2/255.
    assert torch.allclose(
        pixels.mean(dim=(1, 2)), torch.tensor(rgb, dtype=torch.float32), atol=3 / 255
    )


def test_a_16_bit_gradient_keeps_its_range(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    pixels = load_image(str(tmp_path / "ramp.png"), 64)
    assert pixels.min() == 0 and pixels.max() == 1 and pixels.mean() == pytest.approx(0.5, abs=0.01)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A photo stored upside down with EXIF orientation 3 (turn 180°) reads the right way up."""
    stored = np.zeros((8, 16), np.uint8)
    stored[:, 8:] = 255  # right half white as stored, so left half white once turned
    exif = Image.Exif()
    exif[0x0112] = 3  # Orientation
    Image.fromarray(stored).save(tmp_path / "turned.png", exif=exif)
    pixels = load_image(str(tmp_path / "turned.png"), 8)
    assert pixels[:, :, :4].min() == 1 and pixels[:, :, 4:].max() == 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_float_image_with_a_nan_or_infinite_pixel_is_one_sentence(
    value: float, tmp_path: Path
) -> None:
    pixels = np.full((8, 8), 0.5, dtype=np.float32)
    pixels[2, 5] = value  # -inf would be clipped to black unseen, nan and +inf poison the loss
    Image.fromarray(pixels, mode="F").save(tmp_path / "float.tif")
    with pytest.raises(ValueError) as error:
        load_image(str(tmp_path / "float.tif"), 8)
    assert str(error.value) == (
        f"image {str(tmp_path / 'float.tif')!r} has 1 NaN or infinite pixels (the first at x=5, "
        f"y=2); accepted: float images whose every pixel is a finite number"
    )


@pytest.mark.parametrize("side", [10**4, 14_000], ids=["over-the-warning", "over-the-error"])
def test_a_decompression_bomb_is_one_sentence(side: int, tmp_path: Path) -> None:
    """Pillow warns from MAX_IMAGE_PIXELS (and then decodes it all) and raises from twice it."""
    (tmp_path / "bomb.png").write_bytes(png_claiming(side, side))
    with pytest.raises(ValueError, match="decompression bomb") as error:
        load_image(str(tmp_path / "bomb.png"), 8)
    message = str(error.value)
    assert "bomb.png" in message and f"at most {Image.MAX_IMAGE_PIXELS} pixels" in message
    assert "\n" not in message and error.value.__cause__ is None
