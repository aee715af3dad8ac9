"""FeatureNetwork (networks/base.py): frozen, in eval mode, on the device of its weights."""

import pytest
import torch

from slp_lightning.networks import build_feature_network


def test_network_is_frozen_and_stays_in_eval_mode() -> None:
    net = build_feature_network("alexnet", "fc6", "random")
    net.train()
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("network, layer", [("alexnet", "conv2"), ("dsift", None)])
def test_device_is_where_the_weights_are_with_or_without_buffers(
    network: str, layer: str | None
) -> None:
    # AlexNet has parameters and no buffers, dense SIFT the opposite; the targets' features are
    # computed on this device, so looking at buffers alone sent AlexNet's inputs to the CPU on a GPU.
    net = build_feature_network(network, layer, "random")
    assert net.device == torch.device("cpu")
    assert net.to("meta").device == torch.device("meta")
