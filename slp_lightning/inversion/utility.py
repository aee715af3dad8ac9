"""What a defence costs the task: the victim model's own output with the observed (defended)
features put back at the layer they were read at, the rest of its forward run on them, against
its output on the clean features."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from slp_lightning.networks import FeatureNetwork, ModuleNetwork

DEFINITION = (
    "the victim model's top-1 class with the observed features put back at the layer (the rest of "
    "its forward run on them) is its top-1 class on the clean features"
)


def _logits(value: Any) -> Tensor | None:
    """A model's output as logits (N, C): a tensor, or a ModelOutput's ``logits``."""
    value = getattr(value, "logits", value)
    return value.flatten(1) if torch.is_tensor(value) else None


def why_not_measurable(network: FeatureNetwork, changes_shape: bool) -> str | None:
    """Why the task cannot be measured for ``network`` (``None``: it can)."""
    if changes_shape:
        return "the defence changes the features' shape: they cannot be put back"
    if not isinstance(network, ModuleNetwork):
        return (
            f"{network.name} is built up to {network.layer} only, with no head; invert it as a model "
            f"read at a module path (network torchvision with arch, or a model of your own) to measure it"
        )
    reader = network.reader
    if reader.output is not None or reader.tokens is not None:
        return f"the features are an entry (output or tokens) of {reader.layer}'s output: they cannot be put back"
    return None


@torch.no_grad()
def task_outputs(
    network: ModuleNetwork, images: Tensor, features: Tensor | None, batch: int = 16
) -> Tensor:
    """The top-1 class (N,) of ``network``'s whole model on ``images`` (N, C, S, S) in [0, 1],
    with ``features`` (N, …) put in place of its layer's output when given (``None``: as it is);
    for a network read at its output the features are the output."""
    reader, device = network.reader, network.device
    if reader.layer is None:
        outputs = (
            features
            if features is not None
            else torch.cat([network(b.to(device)).cpu() for b in images.split(batch)])
        )
        return outputs.flatten(1).argmax(dim=1)
    module = dict(network.model.named_modules())[reader.layer]
    classes = []
    for start in range(0, len(images), batch):
        part = images[start : start + batch].to(device)
        replacement = None if features is None else features[start : start + batch].to(device)
        done = []

        def put_back(_module: Any, _args: Any, output: Tensor) -> Tensor | None:
            if replacement is None or done:  # a module called again in the forward keeps its own
                return None
            done.append(True)
            return replacement.to(output.dtype).view_as(output)

        handle = module.register_forward_hook(put_back)
        try:
            logits = _logits(network.model(network.body[0](part)))
        finally:
            handle.remove()
        if logits is None:
            raise ValueError(
                f"{network.name}'s output is no tensor of logits: the task cannot be measured"
            )
        classes.append(logits.argmax(dim=1).cpu())
    return torch.cat(classes)


def task_agreement(
    network: FeatureNetwork, images: Tensor | None, clean: Tensor, observed: Tensor
) -> tuple[Tensor | None, str]:
    """Per target (N,) 1.0 where the model's top-1 class with ``observed`` features put back is
    its class with the ``clean`` ones, and what was measured (``DEFINITION``); ``None`` and the
    reason when it cannot be measured (no head, a shape the defence changed, no images)."""
    why = why_not_measurable(network, observed.shape != clean.shape)
    if why is None and images is None and network.reader.layer is not None:
        why = "the targets' images are not known (features only): the model cannot be run past the layer"
    if why is not None:
        return None, why
    if images is None:  # read at the output: the features are the logits
        return (observed.flatten(1).argmax(1) == clean.flatten(1).argmax(1)).float(), DEFINITION
    normal = task_outputs(network, images, clean)
    defended = task_outputs(network, images, observed)
    return (defended == normal).float(), DEFINITION
