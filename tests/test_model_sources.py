"""Models from timm, Hugging Face transformers and torchvision's Vision Transformer: their input
conventions, weights and token features (hub_sources.py, hooks.select_tokens)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slp_lightning import FeatureInversion
from slp_lightning.networks import build_feature_network, layer_listing
from slp_lightning.networks.hooks import select_tokens

from helpers import short_inversion


def test_tokens_all_cls_and_patch_grid() -> None:
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float).view(2, 5, 3)  # a class token + 2x2 patches
    assert torch.equal(select_tokens(tokens, "all", None, "x"), tokens)
    assert torch.equal(select_tokens(tokens, "cls", None, "x"), tokens[:, 0])
    grid = select_tokens(tokens, "patch", None, "x")
    assert grid.shape == (2, 3, 2, 2) and torch.equal(grid[:, :, 0, 1], tokens[:, 2])
    registers = torch.zeros(1, 4 + 1 + 9, 3)  # timm's register tokens: num_prefix_tokens = 5
    assert select_tokens(registers, "patch", 5, "x").shape == (1, 3, 3, 3)
    with pytest.raises(
        ValueError, match=r"needs token features \(N, T, D\); x gives \(1, 3, 4, 4\)"
    ):
        select_tokens(torch.zeros(1, 3, 4, 4), "patch", None, "x")
    with pytest.raises(ValueError, match="no square grid"):
        select_tokens(torch.zeros(1, 7, 3), "patch", None, "x")


@pytest.mark.slow
def test_torchvision_vit_b_16_patch_tokens_invert() -> None:
    model = FeatureInversion(
        network="torchvision", arch="vit_b_16", network_args={"image_size": 32}, weights="random",
        layer="encoder.layers.encoder_layer_1", tokens="patch", image_size=32, pyramid_levels=2,
    )  # fmt: skip
    assert model.inversion.feature_shape == (768, 2, 2)
    losses = short_inversion(model, torch.rand(1, 3, 32, 32), steps=5)
    assert losses[-1] < losses[0]
    cls = model.with_settings(tokens="cls")
    assert cls.inversion.feature_shape == (768,) and cls.network.model is model.network.model
    with pytest.raises(ValueError, match="needs token features"):
        model.with_settings(layer="conv_proj")


def test_timm_model_at_a_module_path_with_its_own_convention_and_a_weights_file(
    tmp_path: Path,
) -> None:
    timm = pytest.importorskip("timm")
    net = build_feature_network("timm:resnet18", "layer2", weights="random")
    assert net.name == "timm/resnet18" and net.weights == "random (seed 0)"
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 128, 4, 4)
    reference = timm.create_model("resnet18").eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    loaded = build_feature_network(
        "timm:resnet18", "layer1", weights=str(tmp_path / "resnet18.pth")
    )
    images = torch.rand(1, 3, 32, 32)
    mean = torch.tensor(reference.pretrained_cfg["mean"])[:, None, None]
    std = torch.tensor(reference.pretrained_cfg["std"])[:, None, None]
    stem = reference.maxpool(reference.act1(reference.bn1(reference.conv1((images - mean) / std))))
    assert torch.allclose(loaded(images), reference.layer1(stem), atol=1e-5)
    with pytest.raises(ValueError, match="timm has no model 'resnet1800'; closest: resnet1"):
        build_feature_network("timm:resnet1800", None)


def test_timm_auto_weights_offline_fall_back_to_random_loudly() -> None:
    pytest.importorskip("timm")
    from slp_lightning.networks.weights import RandomWeightsWarning

    with pytest.warns(
        RandomWeightsWarning, match="timm resnet18: pretrained weights are not available"
    ):
        net = build_feature_network("timm:resnet18", "layer1")
    assert net.weights == "timm resnet18 random (seed 0)"


def test_timm_vision_transformer_tokens() -> None:
    pytest.importorskip("timm")
    spec = "timm:vit_tiny_patch16_224"
    net = build_feature_network(
        spec, "blocks.1", weights="random", network_args={"img_size": 32}, tokens="patch"
    )
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 192, 2, 2)
    rows = dict(layer_listing(spec, 32, weights="random", network_args={"img_size": 32}))
    assert rows["blocks.1"] == "(1, 5, 192)"


def test_hugging_face_model_from_a_local_folder_by_layer_index(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64)  # fmt: skip
    reference = transformers.ViTModel(config).eval()
    reference.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}'
    )
    model = FeatureInversion(network=f"hf:{tmp_path}", layer="2", tokens="patch", pyramid_levels=2)
    assert model.image_size == 32 and model.inversion.feature_shape == (32, 4, 4)
    images = torch.rand(1, 3, 32, 32)
    hidden = reference(images * 2 - 1, output_hidden_states=True).hidden_states[2]
    assert torch.allclose(
        model.network(images), select_tokens(hidden, "patch", None, "x"), atol=1e-5
    )
    with pytest.raises(ValueError, match="no local model there"):
        build_feature_network(f"hf:{tmp_path / 'missing'}", None)
