"""Checkpoints: last.ckpt is always the newest state."""

from pathlib import Path

import pytest
import torch

from slp_lightning.cli import main

from conftest import tiny_args


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    """A run with level switches and step checkpoints that ends between two of them."""
    root = tmp_path_factory.mktemp("runs")
    main(tiny_args(root, photos / "coffee.png", "--trainer.max_steps=45",
                   "--checkpoint.every_n_train_steps=20"))  # fmt: skip
    return root / "alexnet_conv2" / "version_0"


def test_last_checkpoint_holds_the_final_step(run: Path) -> None:
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch=0-step=40.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert last["global_step"] == 45
    assert (last["state_dict"]["switch_steps"] >= 0).any()  # the run did switch levels
