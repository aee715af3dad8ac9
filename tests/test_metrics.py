"""The paper's metric N_f and normalised error, and image quality (metrics.py)."""

import pytest
import torch

from slp_lightning.data.images import load_image
from slp_lightning.maths.metrics import NormalizedError, image_quality, mean_pairwise_distance

FEATURES = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])  # pairwise distances 5, 10, 5


def test_n_f_is_the_mean_distance_over_distinct_pairs() -> None:
    assert mean_pairwise_distance(FEATURES) == pytest.approx((5 + 10 + 5) / 3)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_distance(FEATURES[:1])


def test_normalized_error_by_hand() -> None:
    metric = NormalizedError(n_f=20 / 3)
    metric.update(FEATURES[:2], FEATURES[1:])  # errors 5 and 5
    metric.update(FEATURES[2:], FEATURES[:1])  # error 10
    assert metric.compute().item() == pytest.approx((5 + 5 + 10) / 3 / (20 / 3))


def test_normalized_error_accumulates_across_ranks() -> None:
    """Two fake ranks: rank 0 sees one image, rank 1 two; the mean is over all three."""
    rank1 = NormalizedError(n_f=5.0)
    rank1.update(FEATURES[1:], FEATURES[:2])  # errors 5, 5
    gathered = []

    def all_gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:  # noqa: ANN001, ARG001 - its signature
        gathered.append(tensor)
        return [tensor, torch.cat(rank1.errors)]

    rank0 = NormalizedError(n_f=5.0, dist_sync_fn=all_gather, distributed_available_fn=lambda: True)
    rank0.update(FEATURES[2:], FEATURES[:1])  # error 10
    assert rank0.compute().item() == pytest.approx((10 + 5 + 5) / 3 / 5)
    assert gathered, "the metric synchronised its state"


def test_image_quality_of_a_perfect_and_a_noisy_reconstruction() -> None:
    target = load_image("skimage:coffee", 48)[None]
    noisy = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    quality = image_quality(torch.cat([target, noisy]), target.repeat(2, 1, 1, 1))
    assert quality["psnr"][0] > 80 and 15 < quality["psnr"][1] < 25
    assert quality["ssim"][0] == pytest.approx(1.0) and quality["ssim"][1] < 0.9
