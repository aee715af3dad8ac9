"""The frozen feature network ``f`` whose features are inverted."""

from __future__ import annotations

from torch import Tensor, nn


class FeatureNetwork(nn.Module):
    """A frozen network truncated at one layer: images (N, 3, H, W) in [0, 1] -> features.

    It never trains: parameters need no gradient and ``train()`` keeps it in eval mode, so
    Lightning switching the inversion module to training mode cannot turn dropout or batch-norm
    updates on. ``weights`` describes where the weights came from and is recorded in every output.
    """

    def __init__(
        self, body: nn.Module, *, network: str, layer: str, input_size: int, weights: str
    ) -> None:
        super().__init__()
        self.body = body
        self.network = network
        self.layer = layer
        self.input_size = input_size
        self.weights = weights
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FeatureNetwork:  # noqa: ARG002 - always frozen
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)
