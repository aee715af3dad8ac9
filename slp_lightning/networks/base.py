"""The frozen feature network ``f`` whose features are inverted."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torchvision.transforms import v2


def imagenet_normalize() -> nn.Module:
    """[0, 1] RGB -> the ImageNet-standardised input torchvision's pretrained models expect."""
    return v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


class FeatureNetwork(nn.Module):
    """A frozen network truncated at one layer: images (N, C, H, W) in [0, 1] -> features.

    It never trains: parameters need no gradient and ``train()`` keeps it in eval mode, so
    Lightning switching the inversion module to training mode cannot turn dropout or batch-norm
    updates on. In-place activations are turned off: they would overwrite the output of the layer
    before them, which may be the features that are read. ``in_channels`` is 1 for networks of
    grey images (the images are then inverted in grey), else 3. ``weights`` describes where the
    weights came from and is recorded in every output. ``input_size`` is the side of the square
    images it was made for, the default image size of an inversion.
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        name: str,
        layer: str,
        weights: str,
        in_channels: int = 3,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        for module in body.modules():
            if getattr(module, "inplace", False):
                module.inplace = False
        self.body = body
        self.name = name
        self.layer = layer
        self.weights = weights
        self.in_channels = in_channels
        self.input_size = input_size
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FeatureNetwork:  # noqa: ARG002 - always frozen
        return super().train(False)

    @property
    def device(self) -> torch.device:
        """Where its weights are (the CPU for a network that has none). Parameters and buffers
        both count: AlexNet has no buffers, dense SIFT no parameters."""
        tensor = next(itertools.chain(self.parameters(), self.buffers()), None)
        return torch.device("cpu") if tensor is None else tensor.device

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)
