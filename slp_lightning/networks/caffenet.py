"""The paper's AlexNet: CaffeNet (``bvlc_reference_caffenet``) as a plain torch module.

Layers, in order: conv1 relu1 pool1 norm1 conv2 relu2 pool2 norm2 conv3 relu3 conv4 relu4 conv5
relu5 pool5 fc6 relu6 fc7 relu7 fc8 (aliases mpool1/mpool2/mpool5 = pool1/pool2/pool5). As in
CaffeNet, pooling comes before normalisation, conv2/conv4/conv5 use two groups, and there is no
dropout (the network is only used frozen, where dropout is the identity).

Input: RGB images in [0, 1], shape (N, 3, H, W), 227×227 for the fc layers. The network itself
turns them into what Caffe weights expect: BGR, scaled to [0, 255], minus the BGR channel means.

State-dict keys (exactly these, for the layers present in a truncated network)::

    conv1.weight (96, 3, 11, 11)    conv1.bias (96,)
    conv2.weight (256, 48, 5, 5)    conv2.bias (256,)
    conv3.weight (384, 256, 3, 3)   conv3.bias (384,)
    conv4.weight (384, 192, 3, 3)   conv4.bias (384,)
    conv5.weight (256, 192, 3, 3)   conv5.bias (256,)
    fc6.weight (4096, 9216)         fc6.bias (4096,)
    fc7.weight (4096, 4096)         fc7.bias (4096,)
    fc8.weight (1000, 4096)         fc8.bias (1000,)

Converting Caffe weights: a layer's ``blobs[0]`` is ``<name>.weight`` and ``blobs[1]`` is
``<name>.bias``, with their Caffe shapes unchanged (Caffe's conv1 already takes BGR input, and
fc6 flattens pool5 in (C, H, W) order like ``Tensor.flatten``). Load them with
:meth:`CaffeNet.load_caffe_state_dict`, which accepts a full state dict in a truncated network.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import count

import torch
from torch import Tensor, nn

from slp_lightning.networks.base import FeatureNetwork
from slp_lightning.networks.state_dicts import load_needed
from slp_lightning.networks.weights import load_weights

LAYERS: tuple[str, ...] = (
    "conv1", "relu1", "pool1", "norm1",
    "conv2", "relu2", "pool2", "norm2",
    "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5",
    "fc6", "relu6", "fc7", "relu7", "fc8",
)  # fmt: skip
ALIASES: dict[str, str] = {"mpool1": "pool1", "mpool2": "pool2", "mpool5": "pool5"}
INPUT_SIZE = 227
# Caffe's ImageNet mean image averaged per channel, in the BGR order the weights were trained on.
BGR_MEAN: tuple[float, float, float] = (104.007, 116.669, 122.679)

# name -> (in channels, out channels, kernel, stride, padding, groups)
_CONVS: dict[str, tuple[int, int, int, int, int, int]] = {
    "conv1": (3, 96, 11, 4, 0, 1),
    "conv2": (96, 256, 5, 1, 2, 2),
    "conv3": (256, 384, 3, 1, 1, 1),
    "conv4": (384, 384, 3, 1, 1, 2),
    "conv5": (384, 256, 3, 1, 1, 2),
}
_FCS: dict[str, tuple[int, int]] = {
    "fc6": (256 * 6 * 6, 4096),
    "fc7": (4096, 4096),
    "fc8": (4096, 1000),
}
_POOL5_SIZE = 6


def _build(name: str) -> nn.Module:
    if name in _CONVS:
        c_in, c_out, kernel, stride, padding, groups = _CONVS[name]
        return nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups)
    if name in _FCS:
        return nn.Linear(*_FCS[name])
    if name.startswith("pool"):
        # Caffe rounds pooling output sizes up; at 227×227 this changes nothing, elsewhere it
        # keeps the feature maps the size Caffe gives.
        return nn.MaxPool2d(3, 2, ceil_mode=True)
    if name.startswith("norm"):
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
    # Not in-place: the output of the layer before a ReLU may be the features that are read.
    return nn.ReLU()


def _spatial_size(size: int, layers: tuple[str, ...]) -> int:
    """Feature-map side after ``layers`` for an input side ``size``; 0 if a window doesn't fit."""
    for name in layers:
        if name in _CONVS:
            _, _, kernel, stride, padding, _ = _CONVS[name]
        elif name.startswith("pool"):
            kernel, stride, padding = 3, 2, 0
        else:
            continue
        span = size + 2 * padding - kernel
        if span < 0:
            return 0
        size = (-(-span // stride) if name.startswith("pool") else span // stride) + 1
    return size


class CaffeNet(nn.Module):
    """CaffeNet truncated after ``layer``: RGB images (N, 3, H, W) in [0, 1] -> its features.

    Only the modules up to ``layer`` exist. Features are (N, C, h, w) for conv/relu/pool/norm
    layers up to pool5 and (N, F) for fc6 onwards (e.g. conv1 (N, 96, 55, 55), pool5
    (N, 256, 6, 6), fc8 (N, 1000) at 227×227). Conv layers accept any H, W of at least
    ``min_input_size``; fc layers need pool5 to be 6×6, i.e. a 227×227 input.
    """

    def __init__(self, layer: str = "fc8") -> None:
        super().__init__()
        name = ALIASES.get(layer, layer)
        if name not in LAYERS:
            raise ValueError(
                f"unknown CaffeNet layer {layer!r}; valid layers: {', '.join(LAYERS)} "
                f"(aliases: {', '.join(f'{a}={n}' for a, n in ALIASES.items())})"
            )
        self.layer = name
        self.layers: tuple[str, ...] = LAYERS[: LAYERS.index(name) + 1]
        for layer_name in self.layers:
            self.add_module(layer_name, _build(layer_name))
        # Not persistent: the state dict holds exactly the Caffe weights and nothing else.
        mean = torch.tensor(BGR_MEAN).view(1, 3, 1, 1)
        self.register_buffer("bgr_mean", mean, persistent=False)
        self.min_input_size = next(s for s in count(1) if _spatial_size(s, self.layers))

    def preprocess(self, images: Tensor) -> Tensor:
        """RGB in [0, 1], (N, 3, H, W) -> Caffe input: BGR in [0, 255] minus ``BGR_MEAN``."""
        return images.flip(1) * 255.0 - self.bgr_mean

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) RGB in [0, 1] -> features of ``self.layer``."""
        self._check_input(images)
        x = self.preprocess(images)
        for name, module in self.named_children():
            if name == "fc6":
                x = x.flatten(1)
            x = module(x)
        return x

    def _check_input(self, images: Tensor) -> None:
        # Checked up front so a bad size fails with the size it needs, not deep inside a conv.
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected RGB images of shape (N, 3, H, W), got {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f"input {height}×{width} is too small for CaffeNet up to {self.layer}: "
                f"height and width must be at least {self.min_input_size}"
            )
        if "fc6" in self.layers:
            pool5 = tuple(_spatial_size(s, self.layers) for s in (height, width))
            if pool5 != (_POOL5_SIZE, _POOL5_SIZE):
                raise ValueError(
                    f"fc layers need a {INPUT_SIZE}×{INPUT_SIZE} input (pool5 of "
                    f"{_POOL5_SIZE}×{_POOL5_SIZE}); input {height}×{width} gives pool5 "
                    f"{pool5[0]}×{pool5[1]}"
                )

    def load_caffe_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load converted Caffe weights (keys as in the module docstring) into the layers present.

        Keys of CaffeNet layers after the truncation are ignored, so a full state dict loads into
        any truncated network. Raises ValueError naming every key that belongs to no CaffeNet
        layer, else the missing keys of present layers or the first mis-shaped one.
        """
        own = self.state_dict()
        unexpected = [
            key
            for key in state_dict
            if key not in own and key.split(".", 1)[0] not in LAYERS[len(self.layers) :]
        ]
        if unexpected:
            raise ValueError(
                f"cannot load CaffeNet weights up to {self.layer}: "
                f"unexpected {', '.join(unexpected)}"
            )
        load_needed(self, self, state_dict, f"CaffeNet weights up to {self.layer}")


def build_caffenet(
    layer: str, weights: str = "auto", weights_map: dict[str, str] | None = None
) -> FeatureNetwork:
    """The paper's AlexNet truncated after ``layer``; weights from a converted state dict.

    There are no downloadable CaffeNet weights: ``auto`` and ``random`` give the seeded random
    network (``auto`` with a loud warning); a path loads a state dict with the keys above (those
    of later layers may be absent), renamed first by ``weights_map``.
    """
    net, description = load_weights(
        lambda: CaffeNet(layer), weights, None, name="CaffeNet", weights_map=weights_map
    )
    return FeatureNetwork(net, name="alexnet_caffe", layer=net.layer, weights=description)
