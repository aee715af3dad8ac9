"""Checkpoints: last.ckpt is always the newest state."""

from pathlib import Path

import pytest
import torch

from slp_lightning.cli import main

from helpers import tiny_args

pytestmark = pytest.mark.slow  # every test here shares a 10 s run


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


def resume(run: Path, images: Path, *extra: str) -> None:
    main(tiny_args(run.parents[1], images, "--trainer.max_steps=45", *extra,
                   f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))  # fmt: skip


def test_resume_refuses_other_images(run: Path, photos: Path) -> None:
    with pytest.raises(ValueError, match=r"images: \['coffee'\] \(checkpoint\) vs \['chelsea'\] \(this run\)"):
        resume(run, photos / "chelsea.png", "--trainer.max_steps=90")


def test_resume_refuses_another_image_size_and_leaves_no_run_folder(run: Path, photos: Path) -> None:
    with pytest.raises(ValueError, match=r"another problem \(image_size: 64 \(checkpoint\) vs 72 \(this run\)\)"):
        resume(run, photos / "coffee.png", "--trainer.max_steps=90", "--model.image_size=72")
    assert list(run.parent.iterdir()) == [run]  # the refused run's version_1 is gone


def test_resuming_a_finished_run_says_so_and_makes_no_new_run(
    run: Path, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = sorted(run.parent.iterdir())
    resume(run, photos / "coffee.png")
    assert "is a finished run (it reached step 45, and --trainer.max_steps is 45" in capsys.readouterr().out
    assert sorted(run.parent.iterdir()) == runs
