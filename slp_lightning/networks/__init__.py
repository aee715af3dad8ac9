"""Feature networks: ``build_feature_network`` (``build.py``) reads any network at a layer: a name
of the registry of named networks (``registry.py``: AlexNet, CaffeNet, dense SIFT, torchvision,
CRAFT's VGG16-BN), any ``nn.Module``, or a spec (``sources.py``, ``hub_sources.py``: an import
path, a TorchScript or ``torch.export`` file, ``timm:NAME``, ``hf:FOLDER``) whose layers are module
paths read by a forward hook (``hooks.py``); ``layer_listing`` lists a network's layers.
"""

from slp_lightning.networks.base import FeatureNetwork
from slp_lightning.networks.build import LAYER_OPTIONS, Network, build_feature_network
from slp_lightning.networks.layer_listing import layer_listing
from slp_lightning.networks.module_network import ModuleNetwork
from slp_lightning.networks.registry import (
    NETWORKS,
    default_coarse_lr,
    default_input_size,
    layer_names,
)

__all__ = [
    "LAYER_OPTIONS", "NETWORKS", "FeatureNetwork", "ModuleNetwork", "Network", "build_feature_network",
    "default_coarse_lr", "default_input_size", "layer_listing", "layer_names",
]  # fmt: skip
