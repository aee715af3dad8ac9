"""Callbacks that act on level switches do so whatever the order the Trainer was given them in."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning import FeatureInversion, OutputWriter, PyramidSwitch, TargetImages


def level_pngs(root: Path, writer_first: bool) -> dict[str, bytes]:
    switch = PyramidSwitch(min_steps=3, patience=3, max_steps_per_level=6)
    callbacks = [OutputWriter(), switch] if writer_first else [switch, OutputWriter()]
    pl.seed_everything(0, verbose=False)
    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    trainer = pl.Trainer(max_steps=20, callbacks=callbacks, logger=TensorBoardLogger(root, name="run"),
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, TargetImages("skimage:astronaut", image_size=64))
    return {p.name: p.read_bytes() for p in sorted(root.glob("run/version_0/reconstructions/*_level*.png"))}


def test_phase_images_do_not_depend_on_the_callbacks_order(tmp_path: Path) -> None:
    switch_first, writer_first = level_pngs(tmp_path / "a", False), level_pngs(tmp_path / "b", True)
    # levels 3 and 2 end at switches (written by the listener), level 1 at the end of the run
    assert sorted(switch_first) == ["astronaut_level1.png", "astronaut_level2.png", "astronaut_level3.png"]
    assert writer_first == switch_first
