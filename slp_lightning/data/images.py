"""Reading images: a file, a folder, a glob or one of scikit-image's photographs, made square
at a size (resized, centre-cropped), with the sentences that refuse what cannot be read; and the
reference photographs of N_f. Plain PIL and PyTorch: ``data.TargetImages`` reads its targets
here."""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import v2

from slp_lightning.data.file_names import name_key

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BUILTIN_PREFIX = "skimage:"
# Photographs scikit-image ships, for N_f when a run has a single target and no reference set.
BUILTIN_REFERENCES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "coins", "horse")


def find_images(spec: str) -> list[str]:
    """Expand ``spec`` (a file, a folder, a glob, ``skimage:NAME`` or several of scikit-image's
    photographs, ``skimage:astronaut,coffee``) to a sorted list of sources."""
    if spec.startswith(BUILTIN_PREFIX):
        names = [name.strip() for name in spec.removeprefix(BUILTIN_PREFIX).split(",")]
        return [f"{BUILTIN_PREFIX}{name}" for name in dict.fromkeys(names) if name]
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        return [str(p) for p in files]
    if path.is_file():
        return [str(path)]
    matches = sorted(glob.glob(str(path)))
    if not matches:
        raise FileNotFoundError(f"image {spec!r}: no such file, folder or glob match")
    return matches


def _read(source: str) -> Image.Image:
    if source.startswith(BUILTIN_PREFIX):
        import skimage.data  # only needed for the built-in photographs

        name = source.removeprefix(BUILTIN_PREFIX)
        loader = getattr(skimage.data, name, None)
        if loader is None:
            raise ValueError(f"{source!r}: skimage.data has no image {name!r}")
        return Image.fromarray(np.asarray(loader()))
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice it, and then decodes the lot.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                # A camera's portrait photo is stored sideways, with an EXIF tag saying how to turn it.
                return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(
            f"image {source!r} is refused as a possible decompression bomb "
            f"({str(error).rstrip('.')}); accepted: images of at most "
            f"{Image.MAX_IMAGE_PIXELS} pixels (PIL.Image.MAX_IMAGE_PIXELS), so shrink it first"
        ) from None
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {source!r} does not exist") from None
    except UnidentifiedImageError:
        raise ValueError(f"{source!r} is not an image file pillow can read") from None
    except OSError as error:  # truncated or corrupt data
        raise ValueError(f"cannot read image {source!r}: {error}") from None


def _full_scale(image: Image.Image, largest: float) -> float:
    """The value that is white in an image of a 16-bit, 32-bit or float mode."""
    if image.mode.startswith("I;16"):
        return 65535.0
    # Modes I and F do not say their bit depth: take the smallest usual range that holds the
    # image, so that 8-bit or 16-bit data stored in them keeps its brightness.
    ranges = ((1.0,) if image.mode == "F" else ()) + (255.0, 65535.0, 2.0**32 - 1)
    return next((r for r in ranges if largest <= r), largest)


def rgb_pixels(image: Image.Image) -> Tensor:
    """(3, H, W) pixels of a Pillow image of any mode: uint8 for 8-bit modes (grey replicated,
    alpha and palette transparency dropped, CMYK and YCbCr converted), float32 in [0, 1] for
    16-bit, 32-bit and float modes, scaled by their real range (``_full_scale``)."""
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(values / _full_scale(image, float(values.max(initial=0))), 0, 1)
        return torch.from_numpy(grey).float().expand(3, -1, -1)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a palette's transparency is dropped
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def load_image(source: str, size: int) -> Tensor:
    """Read one image as RGB (``rgb_pixels``; EXIF orientation applied), resize its short side to
    ``size`` and centre-crop: returns (3, size, size) float32 in [0, 1]."""
    transform = v2.Compose(
        [
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    image = _read(source)
    _check_finite(image, source)
    return transform(rgb_pixels(image))


def _check_finite(image: Image.Image, source: str) -> None:
    """Refuse a float image (mode F, the only one that can) with NaN or infinite pixels: they
    would make the loss non-finite at the first step, or be clipped away unseen (-inf)."""
    if image.mode != "F":
        return
    bad = ~np.isfinite(np.asarray(image))
    if bad.any():
        y, x = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"image {source!r} has {int(bad.sum())} NaN or infinite pixels (the first at x={x}, "
            f"y={y}); accepted: float images whose every pixel is a finite number"
        )


def image_name(source: str) -> str:
    """The stem used for output files: ``photos/cat.png`` -> ``cat``, ``skimage:coffee`` -> ``coffee``."""
    return (
        source.removeprefix(BUILTIN_PREFIX)
        if source.startswith(BUILTIN_PREFIX)
        else Path(source).stem
    )


def _candidates(source: str, parent: str) -> tuple[str, ...]:
    """The names a source may get, shortest first: its stem, its file name (a built-in
    photograph's spec), its path from ``parent`` (the folder that holds every file), and that
    with a short and with a whole hash of that path (the same from any working directory)."""
    if source.startswith(BUILTIN_PREFIX):
        longer = relative = source
    else:
        longer = Path(source).name
        relative = Path(os.path.relpath(os.path.abspath(source), parent)).as_posix()
    digest = hashlib.sha256(relative.encode("utf-8", "surrogatepass")).hexdigest()
    return (
        image_name(source),
        longer,
        relative,
        f"{relative} ({digest[:8]})",
        f"{relative} ({digest})",
    )


def unique_names(sources: list[str]) -> list[str]:
    """One name per source (``find_images``'s), its files' stem in every output: the stem
    (``photos/cat.png`` -> ``cat``), and for the sources whose names would share files
    (``name_key``: ``a.jpg`` and ``a.png``; ``A.png`` and ``a.png``; two spellings of é) the
    file name (``a.jpg``, ``a.png``), then the path from the sources' common folder, then that with
    a hash of the source. Every source of a clash moves on together, until no two names share a
    key: the names depend on the set of sources only, never on their order, and no moved-on name
    can be another source's name."""
    folders = [
        os.path.dirname(os.path.abspath(s)) for s in sources if not s.startswith(BUILTIN_PREFIX)
    ]
    parent = os.path.commonpath(folders) if folders else ""
    candidates = [_candidates(source, parent) for source in sources]
    levels = [0] * len(sources)
    while True:
        names = [options[level] for options, level in zip(candidates, levels)]
        holders: dict[str, list[int]] = {}
        for index, name in enumerate(names):
            holders.setdefault(name_key(name), []).append(index)
        clashes = [index for group in holders.values() if len(group) > 1 for index in group]
        if not clashes:
            return names
        for index in clashes:
            if levels[index] == len(candidates[index]) - 1:
                raise ValueError(f"two image sources cannot be told apart: {sources[index]!r}")
            levels[index] += 1


def reference_images(
    spec: str | None, size: int, channels: int = 3, exclude: tuple[str, ...] = ()
) -> Tensor:
    """The reference set for ``N_f`` when a run's targets cannot be it (and the natural images an
    attacker calibrates on): the images of ``spec`` (a file, folder or glob), else
    ``BUILTIN_REFERENCES`` but those named in ``exclude`` (the targets'); (M, channels, size,
    size), grey as the mean of R, G and B when ``channels`` is 1."""
    sources = (
        find_images(spec)
        if spec is not None
        else [f"{BUILTIN_PREFIX}{name}" for name in BUILTIN_REFERENCES if name not in exclude]
    )
    references = torch.stack([load_image(source, size) for source in sources])
    return references.mean(dim=1, keepdim=True) if channels == 1 else references
