"""The targets of a run as a LightningDataModule: images (read by ``images``) or their features
(``features``), and the clock of optimisation steps."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from slp_lightning.data.features import read_features
from slp_lightning.data.images import find_images, load_image, unique_names
from slp_lightning.errors import ArgumentError, check_range

DEFAULT_IMAGES = "skimage:astronaut"
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


class TargetImages(pl.LightningDataModule):
    """The targets whose features are inverted: images, or features without images.

    Args:
        images: a file, a folder, a glob, or ``skimage:NAME`` for a photograph shipped with
            scikit-image (default ``skimage:astronaut``, so a run needs no files;
            ``skimage:astronaut,coffee`` for several). With
            ``features``, the ground truth of those features (matched by name, else by order),
            for PSNR and SSIM; optional.
        image_size: side of the square network input; set from the model's network by the CLI.
        features: a feature file (``features.read_features``: ``.pt``, ``.npy``,
            ``.safetensors``) to invert instead of the features of ``images``; one tensor per
            target, of the shape the model's network gives at its layer for ``image_size``.
        chunk_size: invert at most this many targets at a time (``chunks.run``): memory is
            bounded by the chunk, not the dataset. ``auto`` (the command line resolves it):
            as many as fit the device (``chunk_sizes.auto_chunk_size``; a sweep is never chunked).
            ``None``: all in one run.
        seeds: a feature visualisation's rows per objective (``FeatureInversion.objective``):
            each starts from its own noise; no images are read. ``None``: one (a visualisation),
            or the targets.

    After ``setup``: ``names``, the N output stems; ``targets``, (N, 3, S, S) in [0, 1] (``None``
    for features without images); ``features``, (N, …) or ``None`` (computed from the images).
    Batches are only the ticks of the optimisation clock: the targets are fixed, and the
    inversion module keeps them (and their features) for the whole run.
    """

    def __init__(
        self, images: str | None = None, image_size: int = 224, features: str | None = None,
        chunk_size: int | Literal["auto"] | None = "auto", seeds: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        check_range(seeds, "TargetImages.seeds", low=1, integer=True)
        if seeds is not None and (images or features):
            raise ArgumentError(
                "seeds are the rows of a feature visualisation, which starts from noise: give seeds "
                "or images and features, not both",
                "TargetImages.seeds",
            )
        #: a visualisation's rows per objective (``FeatureInversion.objective``); ``None``: targets
        self.seeds = seeds
        check_range(image_size, "TargetImages.image_size", low=1, integer=True)
        if chunk_size != "auto":
            check_range(chunk_size, "TargetImages.chunk_size", low=1, integer=True)
        #: whether images or features were given (a visualisation takes neither)
        self.given = bool(images or features)
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
        if self.seeds is not None:
            return [f"seed_{i}" for i in range(self.seeds)], None, None
        if self._plan is None:
            names, features = (
                read_features(self.features_file) if self.features_file else ([], None)
            )
            sources = find_images(self.images) if self.images is not None else None
            if sources is not None:
                image_names = unique_names(sources)
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
