"""SIGINT and SIGTERM save, write what was reached, say so and exit 130 and 143."""

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import launch, tiny_args


def start(root: Path, images: Path) -> subprocess.Popen:
    """A long tiny run in a subprocess, checkpointing every 5 steps."""
    return launch(
        root,
        tiny_args(root, images, "--trainer.max_steps=100000", "--checkpoint.every_n_train_steps=5"),
    )


@pytest.mark.slow
def test_sigint_and_sigterm_save_and_exit_non_zero(tmp_path: Path, photos: Path) -> None:
    runs = {name: (tmp_path / name, start(tmp_path / name, photos / "coffee.png"))
            for name in ["SIGINT", "SIGTERM"]}  # fmt: skip
    for name, (root, process) in runs.items():
        last = root / "alexnet_conv2" / "version_0" / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 180
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.exists(), process.communicate()[0][-3000:]
        process.send_signal(getattr(signal, name))
    for name, (root, process) in runs.items():
        output = process.communicate(timeout=120)[0]
        assert process.returncode == {"SIGINT": 130, "SIGTERM": 143}[name], output[-3000:]
        run = root / "alexnet_conv2" / "version_0"
        results = json.loads((run / "results.json").read_text())
        assert results["status"] == f"interrupted: {name}"
        assert (run / "reconstructions" / "coffee.png").exists()
        # last.ckpt holds the step the run stopped at, and the message says to resume from it.
        assert (
            torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
            == results["steps"]
        )
        hint = f"resume with --ckpt_path {run / 'checkpoints' / 'last.ckpt'}"
        assert hint in output
        # Then what the run produced (outputs.report), as at the end of a finished run.
        headline = rf"^1 image, {results['steps']} steps \(interrupted: {name}\): mean normalised error [\d.]+ %"
        assert re.search(headline, output, re.M), output[-3000:]
        assert re.search(rf"^results: +{re.escape(str(run / 'results.json'))}$", output, re.M)
        assert re.search(rf"^sheet: +{re.escape(str(run / 'sheet.png'))}$", output, re.M)
        assert output.index(hint) < output.index(f"tensorboard --logdir {run}\n")
