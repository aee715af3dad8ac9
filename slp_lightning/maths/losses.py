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


PAPER_NETWORKS = ("alexnet", "alexnet_caffe")  # the networks whose layers the table numbers


def compactness_for_layer(network: str, layer: str) -> float:
    """The paper's λ_D for a layer of AlexNet or CaffeNet; 0 for any other network's layers
    (dense SIFT: the paper's own 0; a ResNet's ``conv1`` is not AlexNet's)."""
    return PAPER_COMPACTNESS.get(layer, 0.0) if network in PAPER_NETWORKS else 0.0


def feature_distance(features: Tensor, target: Tensor) -> Tensor:
    """‖features − target‖₂ per image: (N, …) × (N, …) -> (N,)."""
    return (features - target).flatten(1).norm(dim=1)


def compactness_distance(I_r: Tensor, I_in: Tensor) -> Tensor:
    """``D`` per image: the compactness term ‖I_r − I_in‖₂ (eq. 7), (N, …) × (N, …) -> (N,)."""
    return feature_distance(I_r, I_in)


# --------------------------------------------------------------------------- the TV baseline
# Mahendran & Vedaldi (CVPR 2015): data term ‖f(x) − f(I)‖² / ‖f(I)‖², an α-norm (α = 6) and a
# TV^β (β = 2) regulariser, each normalised so that a natural image scores about 1: pixels are
# centred and scaled to x̃ = 2x − 1 (B = 1) and differences are measured against V = B / 6.5.
ALPHA, BETA, TV_SCALE = 6, 2, 1 / 6.5
# (λ_α, λ_TV) by layer family. The paper's own per-layer table could not be consulted offline;
# these are this tool's defaults, chosen so the regularisers matter most for the deep layers,
# as in the paper, and they are configurable (``--model.tv_weights``).
TV_WEIGHTS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        ["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2"], (1e-3, 1e-2)
    ),
    **dict.fromkeys(["conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5"], (1e-3, 1e-1)),
    **dict.fromkeys(["fc6", "relu6", "fc7", "relu7", "fc8"], (1e-3, 1.0)),
}
DEFAULT_TV_WEIGHTS = (1e-3, 1e-2)


def tv_weights_for_layer(layer: str) -> tuple[float, float]:
    """``(λ_α, λ_TV)`` of the TV baseline for a layer name."""
    return TV_WEIGHTS.get(layer, DEFAULT_TV_WEIGHTS)


def alpha_norm(images: Tensor) -> Tensor:
    """Mean of |2x − 1|^α per image: (N, C, H, W) in [0, 1] -> (N,)."""
    return (2 * images - 1).abs().pow(ALPHA).flatten(1).mean(dim=1)


def total_variation(images: Tensor) -> Tensor:
    """Mean of ((∂x̃/∂u)² + (∂x̃/∂v)²)^(β/2) / V^β per image, x̃ = 2x − 1: (N, C, H, W) -> (N,)."""
    scaled = (2 * images) / TV_SCALE
    du = scaled[..., :-1, 1:] - scaled[..., :-1, :-1]
    dv = scaled[..., 1:, :-1] - scaled[..., :-1, :-1]
    return (du.pow(2) + dv.pow(2)).pow(BETA / 2).flatten(1).mean(dim=1)


def tv_loss(E: Tensor, target: Tensor, images: Tensor, weights: tuple[float, float]) -> Tensor:
    """The Mahendran–Vedaldi objective per image (N,), from the feature error ``E`` (N,), the
    target features and the images: its data term is ``E² / ‖target‖²``."""
    data = E.pow(2) / target.flatten(1).pow(2).sum(dim=1)
    return data + weights[0] * alpha_norm(images) + weights[1] * total_variation(images)
