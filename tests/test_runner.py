"""The runner from Python (runner.py, ``slp_lightning.run``): what the command line does, in one call."""

import argparse
import json
from pathlib import Path

import pytest
import yaml

import slp_lightning
from slp_lightning.errors import ArgumentError


def test_run_from_python_takes_what_the_command_line_takes(tmp_path: Path, photos: Path) -> None:
    tiny = {"weights": "random", "image_size": 64, "pyramid_levels": 3}
    quiet = {"default_root_dir": str(tmp_path), "enable_progress_bar": False}
    outcomes = [
        slp_lightning.run(
            "alexnet_conv5",
            "--model.layer=conv2",
            "--trainer.max_steps=2",
            model=tiny,
            data={"images": photos / "coffee.png"},
            eval={"classifier": None},
            trainer=quiet,
        )  # fmt: skip
        for _ in range(2)
    ]
    first = outcomes[0]
    assert first.kind == "run" and first.run_dir == tmp_path / "alexnet_conv2" / "version_0"
    assert first.results == json.loads((first.run_dir / "results.json").read_text())
    assert first.results["steps"] == 2 and first.report.endswith(f"--logdir {first.run_dir}")
    saved = yaml.safe_load((first.run_dir / "config.yaml").read_text())
    assert saved["model"]["layer"] == "conv2" and saved["trainer"]["max_steps"] == 2
    assert outcomes[1].run_dir.name == "version_1"  # the next call claims a folder of its own
    with pytest.raises(ArgumentError, match=r"^max_steps must be a number of steps >= 1"):
        slp_lightning.run({"model": tiny, "trainer": {**quiet, "max_steps": 0}})
    with pytest.raises(argparse.ArgumentError, match="does not accept option 'model.layers'"):
        slp_lightning.run("alexnet_conv5", model={"layers": "conv2"})  # raised, not an exit
