"""The baselines' objective terms (objective.py)."""

import pytest
import torch

from slp_lightning.maths.losses import (
    alpha_norm,
    compactness_for_layer,
    feature_distance,
    total_variation,
    tv_loss,
)


def test_tv_baseline_terms() -> None:
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert alpha_norm(flat).item() == 0 and total_variation(flat).item() == 0
    edge = flat.clone()
    edge[..., 4:] = 1.0  # one vertical edge of height 0.5 (1 in 2x − 1 units)
    # 7 of the 7×7 difference positions cross the edge: (1 / V)² = 6.5² each.
    assert total_variation(edge).item() == pytest.approx(7 * 6.5**2 / 49)
    assert alpha_norm(edge).item() == pytest.approx(0.5)
    features, target = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 1.0]])
    E = feature_distance(features, target)
    assert tv_loss(E, target, flat, (1.0, 1.0)).item() == pytest.approx(1 / 5)


def test_the_papers_compactness_table_is_alexnets_only() -> None:
    assert (
        compactness_for_layer("alexnet", "conv5") == 0.1
        and compactness_for_layer("alexnet_caffe", "fc6") == 1.0
    )
    # a ResNet's conv1 or a CRAFT layer is not AlexNet's: no λ_D from the paper's table
    assert compactness_for_layer("torchvision/resnet50", "conv1") == 0.0
    assert compactness_for_layer("craft_vgg16_bn", "relu3_3") == 0.0
