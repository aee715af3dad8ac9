"""How many targets a chunk takes on a device (``chunk_size: auto``): an estimate of one target's
memory while it is inverted, against the device's memory."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from slp_lightning.module.lightning_model import FeatureInversion

# ``chunk_size: auto`` takes at most this share of the device's memory, and at most
# ``MAX_AUTO_CHUNK`` targets: a chunk is also the unit of progress, resume and dealing to devices.
MEMORY_SHARE = 0.5
MAX_AUTO_CHUNK = 256


def target_bytes(model: FeatureInversion) -> int:
    """An estimate of the memory one target takes while it is inverted: the network's activations
    for one image (kept for the backward pass, and about as much again for their gradients), the
    image's own tensors (``I_pre``, its gradient, Adam's two moments, ``I_r``, ``I_in``, the
    pyramid's levels, the target) and its features, in float32."""
    network, size = model.network, model.image_size
    images = torch.zeros(1, network.in_channels, size, size, device=network.device)
    if any(isinstance(module, torch.jit.ScriptModule) for module in network.modules()):
        activations, features = _saved_for_backward(network, images)
    else:
        activations, features = _leaf_outputs(network, images)
    image = network.in_channels * size * size
    return 4 * (2 * activations + (8 + 2 * model.hparams.pyramid_levels) * image + features.numel())


def _leaf_outputs(network: torch.nn.Module, images: Tensor) -> tuple[int, Tensor]:
    """The elements of every leaf module's output in ``network(images)``, and the features."""
    activations: list[int] = []
    leaves = [module for module in network.modules() if not list(module.children())]
    hooks = [
        leaf.register_forward_hook(lambda _m, _i, out: activations.append(out.numel()))
        for leaf in leaves
    ]
    try:
        with torch.no_grad():
            features = network(images)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(activations), features


def _saved_for_backward(network: torch.nn.Module, images: Tensor) -> tuple[int, Tensor]:
    """The elements autograd saves for the backward of ``network(images)``, and the features: what
    a TorchScript model's hidden leaves hold (forward hooks do not see inside compiled code)."""
    saved = [0]

    def pack(tensor: Tensor) -> Tensor:
        saved[0] += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        features = network(images.requires_grad_()).detach()
    return saved[0], features


def device_memory(device: torch.device) -> int:
    """Bytes of memory ``device`` has (for the CPU, the machine's). The total, not what is free
    now: every process of a run, and the run's resume, must arrive at the same chunk size."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_chunk_size(model: FeatureInversion, device: torch.device) -> int:
    """The chunk size ``auto`` means on ``device``: as many targets as fit in ``MEMORY_SHARE`` of
    its memory (``target_bytes`` each), at least 1 and at most ``MAX_AUTO_CHUNK``."""
    return max(
        1, min(MAX_AUTO_CHUNK, int(MEMORY_SHARE * device_memory(device) / target_bytes(model)))
    )
