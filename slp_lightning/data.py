"""Target images: read from files (or a built-in photograph), resized and centre-cropped."""

from __future__ import annotations

import glob
import warnings
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset
from torchvision.transforms import v2

from slp_lightning.features import read_features

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BUILTIN_PREFIX = "skimage:"
DEFAULT_IMAGES = "skimage:astronaut"
# Photographs scikit-image ships, for N_f when a run has a single target and no reference set.
BUILTIN_REFERENCES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "coins", "horse")
# Without a step budget the clock still needs a length: the progress bar counts to it per epoch.
STEPS_PER_EPOCH_UNBOUNDED = 10_000


class _Clock(IterableDataset):
    """``steps`` ticks of the optimisation clock. Iterable, so that Lightning never splits it
    across processes: every process takes every step, on its own images."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):  # noqa: ANN204
        return iter(range(self.steps))


def find_images(spec: str) -> list[str]:
    """Expand ``spec`` (a file, a folder, a glob or ``skimage:NAME``) to a sorted list of sources."""
    if spec.startswith(BUILTIN_PREFIX):
        return [spec]
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


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def reference_images(spec: str | None, size: int, channels: int = 3) -> Tensor:
    """The reference set for ``N_f`` when a run's targets cannot be it: the images of ``spec``
    (a file, folder or glob), else ``BUILTIN_REFERENCES``; (M, channels, size, size), grey as the
    mean of R, G and B when ``channels`` is 1."""
    sources = (
        find_images(spec)
        if spec is not None
        else [f"{BUILTIN_PREFIX}{name}" for name in BUILTIN_REFERENCES]
    )
    references = torch.stack([load_image(source, size) for source in sources])
    return references.mean(dim=1, keepdim=True) if channels == 1 else references


class TargetImages(pl.LightningDataModule):
    """The targets whose features are inverted: images, or features without images.

    Args:
        images: a file, a folder, a glob, or ``skimage:NAME`` for a photograph shipped with
            scikit-image (default ``skimage:astronaut``, so a run needs no files). With
            ``features``, the ground truth of those features (matched by name, else by order),
            for PSNR and SSIM; optional.
        image_size: side of the square network input; set from the model's network by the CLI.
        features: a feature file (``features.read_features``: ``.pt``, ``.npy``,
            ``.safetensors``) to invert instead of the features of ``images``; one tensor per
            target, of the shape the model's network gives at its layer for ``image_size``.
        chunk_size: invert at most this many targets at a time (``chunks.run``): memory is
            bounded by the chunk, not the dataset. ``auto`` (the command line resolves it):
            as many as fit the device (``chunks.auto_chunk_size``; a sweep is never chunked).
            ``None``: all in one run.

    After ``setup``: ``names``, the N output stems; ``targets``, (N, 3, S, S) in [0, 1] (``None``
    for features without images); ``features``, (N, …) or ``None`` (computed from the images).
    Batches are only the ticks of the optimisation clock: the targets are fixed, and the
    inversion module keeps them (and their features) for the whole run.
    """

    def __init__(
        self, images: str | None = None, image_size: int = 224, features: str | None = None,
        chunk_size: int | Literal["auto"] | None = "auto",
    ) -> None:  # fmt: skip
        super().__init__()
        if (
            chunk_size is not None
            and chunk_size != "auto"
            and not (isinstance(chunk_size, int) and chunk_size >= 1)
        ):
            raise ValueError(f"chunk_size must be >= 1, auto or None; got {chunk_size!r}")
        self.images = images or (None if features else DEFAULT_IMAGES)
        self.image_size = image_size
        self.features_file = features
        self.chunk_size = chunk_size
        self.targets: Tensor | None = None
        self.features: Tensor | None = None
        self.names: list[str] = []
        self._plan: tuple[list[str], list[str] | None, Tensor | None] | None = None

    def _planned(self) -> tuple[list[str], list[str] | None, Tensor | None]:
        """Names, the image source of each (``None``: no images) and the features (``None``:
        computed from the images), without reading any image."""
        if self._plan is None:
            names, features = (
                read_features(self.features_file) if self.features_file else ([], None)
            )
            sources = find_images(self.images) if self.images is not None else None
            if sources is not None:
                image_names = _unique([image_name(s) for s in sources])
                if features is None:
                    names = image_names
                elif set(names) <= set(image_names):
                    sources = [sources[image_names.index(n)] for n in names]
                elif len(image_names) != len(names):
                    raise ValueError(
                        f"--data.images gives {len(image_names)} images for {len(names)} features, and "
                        f"their names do not match the features' ({', '.join(names[:3])}, …): give the "
                        f"features' images, in the same order or under the same names"
                    )
            self._plan = (names, sources, features)
        return self._plan

    def target_names(self) -> list[str]:
        """The output stems of every target (no image is read)."""
        return self._planned()[0]

    def chunked(self) -> bool:
        """Whether the targets are more than one chunk."""
        return isinstance(self.chunk_size, int) and len(self.target_names()) > self.chunk_size

    def chunk(self, rows: range) -> TargetImages:
        """The targets ``rows`` as a datamodule of their own, read now."""
        names, sources, features = self._planned()
        part = TargetImages(image_size=self.image_size)
        part.names = [names[i] for i in rows]
        part.features = None if features is None else features[rows.start : rows.stop]
        if sources is not None:
            part.targets = torch.stack([load_image(sources[i], self.image_size) for i in rows])
        return part

    def setup(self, stage: str) -> None:
        if not self.names:
            whole = self.chunk(range(len(self.target_names())))
            self.names, self.targets, self.features = whole.names, whole.targets, whole.features

    def train_dataloader(self) -> DataLoader:
        max_steps = self.trainer.max_steps if self.trainer is not None else -1
        steps = max_steps if max_steps > 0 else STEPS_PER_EPOCH_UNBOUNDED
        return DataLoader(_Clock(steps), batch_size=None)
