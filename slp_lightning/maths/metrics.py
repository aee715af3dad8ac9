"""How good a reconstruction is: the paper's normalised feature error, and PSNR / SSIM."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from slp_lightning.maths.pyramid import LaplacianPyramid


def mean_pairwise_distance(features: Tensor) -> float:
    """``N_f``: the mean Euclidean distance between the features of distinct pairs of images.

    ``features`` is (M, …) with M ≥ 2; each of the M(M−1)/2 pairs counts once.
    """
    if len(features) < 2:
        raise ValueError(f"N_f needs at least 2 reference images, got {len(features)}")
    return torch.pdist(features.flatten(1).double()).mean().item()


class NormalizedError(Metric):
    """Mean normalised reconstruction error ``‖f(x) − f(I)‖₂ / N_f`` (Singh & Namboodiri, §5).

    ``update(features, target_features)`` takes (N, …) batches; ``compute()`` returns the mean
    over every image seen, on every process (per-image errors are concatenated across ranks).
    """

    full_state_update = False

    def __init__(self, n_f: float, **kwargs) -> None:  # noqa: ANN003 - torchmetrics options
        super().__init__(**kwargs)
        if not n_f > 0:
            raise ValueError(f"N_f must be positive, got {n_f}")
        self.n_f = n_f
        self.add_state("errors", default=[], dist_reduce_fx="cat")

    def update(self, features: Tensor, target_features: Tensor) -> None:
        self.errors.append((features - target_features).flatten(1).norm(dim=1).double() / self.n_f)

    def compute(self) -> Tensor:
        errors = self.errors if isinstance(self.errors, Tensor) else torch.cat(self.errors)
        return errors.mean()


def high_frequency_ratio(images: Tensor, targets: Tensor) -> Tensor:
    """Energy of the finest Laplacian band of each image over the target's, (N, C, H, W) -> (N,).

    1 means as much fine detail as the target; well above 1 means added noise (the colour and
    texture noise feature inversions are prone to), below 1 a blurred reconstruction.
    """
    finest = LaplacianPyramid(2).to(images.device)
    energy = [
        finest.decompose(x.float())[0].flatten(1).pow(2).sum(dim=1) for x in (images, targets)
    ]
    return energy[0] / energy[1].clamp_min(1e-12)


def image_quality(images: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """Per-image ``psnr`` (dB), ``ssim`` and ``hf_ratio`` (``high_frequency_ratio``) of
    reconstructions against targets, (N, C, H, W) in [0, 1]."""
    images, targets = images.float(), targets.float()
    if not len(images):  # a process with no images of its own
        return {measure: images.new_zeros(0) for measure in ("psnr", "ssim", "hf_ratio")}
    psnr = peak_signal_noise_ratio(images, targets, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(images, targets, data_range=1.0, reduction="none")
    return {"psnr": psnr, "ssim": ssim, "hf_ratio": high_frequency_ratio(images, targets)}
