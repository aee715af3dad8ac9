"""N_f, the normaliser of the feature error ‖f(x) − f(I)‖ / N_f: the mean distance between the
targets' features (the paper's), measured once per run by whoever runs it."""

from __future__ import annotations

from torch import Tensor

from slp_lightning.data.images import reference_images
from slp_lightning.errors import ArgumentError
from slp_lightning.inversion.torch_model import Inversion
from slp_lightning.maths.metrics import mean_pairwise_distance


def measure_n_f(inversion: Inversion, features: Tensor, references: str | None = None) -> float:
    """N_f for targets of these ``features`` (M, …): their mean pairwise distance, or that of
    the photographs ``references`` (``images.reference_images``: a file, folder or glob; without
    it, when there are fewer than two targets, a few of scikit-image's) through ``inversion``'s
    network. A distance that is not positive and finite is refused: every error would be
    infinite."""
    if references is not None or len(features) < 2:
        channels = inversion.network.in_channels
        features = inversion.features(reference_images(references, inversion.image_size, channels))
    n_f = mean_pairwise_distance(features)
    if not 0 < n_f < float("inf"):
        raise ArgumentError(
            f"N_f, the mean distance between the targets' features that normalises the error, is "
            f"{n_f}: the targets are all alike, or their features are not finite; give other "
            f"targets, or reference_images whose features differ",
            "FeatureInversion.reference_images",
        )
    return n_f
