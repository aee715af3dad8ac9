"""The inversion objective ``Z = E + λ_D·D`` of the paper (eqs. 4, 6, 7), per image."""

from __future__ import annotations

from torch import Tensor

# The paper's λ_D schedule numbers AlexNet's layers 1–24 (1–8: 0.001, 9–12: 0.01, 13–16: 0.1,
# 17–24: 1). Counting the 20 named layers plus the four it does not name (dropout6, dropout7,
# the flatten before fc6 and the final softmax) gives: conv1…norm2 are 1–8, conv3…relu4 9–12,
# conv5, relu5, pool5 (+ flatten) 13–16, and fc6…fc8 (+ dropouts, softmax) 17–24.
PAPER_COMPACTNESS: dict[str, float] = {
    **dict.fromkeys(["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2"], 1e-3),
    **dict.fromkeys(["conv3", "relu3", "conv4", "relu4"], 1e-2),
    **dict.fromkeys(["conv5", "relu5", "pool5"], 1e-1),
    **dict.fromkeys(["fc6", "relu6", "fc7", "relu7", "fc8"], 1.0),
}


def compactness_for_layer(layer: str) -> float:
    """The paper's λ_D for an AlexNet layer name; 0 for layers it gives none (e.g. SIFT)."""
    return PAPER_COMPACTNESS.get(layer, 0.0)


def feature_distance(features: Tensor, target: Tensor) -> Tensor:
    """‖features − target‖₂ per image: (N, …) × (N, …) -> (N,)."""
    return (features - target).flatten(1).norm(dim=1)


def inversion_loss(
    features: Tensor, target: Tensor, I_r: Tensor, I_in: Tensor
) -> tuple[Tensor, Tensor]:
    """``(E, D)`` per image: feature error ‖f(I_in) − f(I)‖₂ and compactness ‖I_r − I_in‖₂."""
    return feature_distance(features, target), feature_distance(I_r, I_in)
