"""Fault injection: runs stopped by SIGINT, SIGTERM or SIGKILL and resumed end exactly where an
uninterrupted run ends, having repeated no step beyond the last save (``benchmarks/faults.py``
runs many more kill points); SIGINT and SIGTERM exit 130 and 143 after saving and saying what
was reached."""

import json
import re
from pathlib import Path

import pytest
import torch

from benchmarks.faults import Kill, inject, reference_run

from helpers import tiny_args

EVERY = 5  # --checkpoint.every_n_train_steps


def said_what_was_reached(kill: Kill) -> None:
    """The stopped run's results.json, PNG and last.ckpt, and its last lines: the resume hint and
    what the run produced (outputs.report), as at the end of a finished run."""
    run, name, output = kill.root / "alexnet_conv2" / "version_0", kill.signal, kill.output
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == f"interrupted: {name}"
    assert (run / "reconstructions" / "coffee.png").exists()
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
        == results["steps"]
    )
    hint = (
        f"resume with: python -m slp_lightning fit --config {run / 'config.yaml'} "
        f"--ckpt_path {run / 'checkpoints' / 'last.ckpt'}"
    )
    headline = rf"^1 image, {results['steps']} steps \(interrupted: {name}\): mean normalised error [\d.]+ %"
    assert hint in output and re.search(headline, output, re.M), output[-3000:]
    assert re.search(rf"^results: +{re.escape(str(run / 'results.json'))}$", output, re.M)
    assert re.search(rf"^sheet: +{re.escape(str(run / 'sheet.png'))}$", output, re.M)
    assert output.index(hint) < output.index(f"tensorboard --logdir {run}\n")


def args(root: Path, images: Path, *extra: str) -> list[str]:
    return tiny_args(root, images, f"--checkpoint.every_n_train_steps={EVERY}", *extra)


@pytest.mark.slow
def test_killed_and_resumed_runs_equal_the_uninterrupted_run(tmp_path: Path, photos: Path) -> None:
    image = photos / "coffee.png"
    reference = reference_run(tmp_path / "reference", args(tmp_path / "reference", image))
    # Step 12 is no save point (a step checkpoint every 5 steps, level switches at others):
    # SIGKILL loses the steps since the last one.
    kills = [Kill(name, step, tmp_path / name, args(tmp_path / name, image))
             for name, step in [("SIGINT", 12), ("SIGTERM", 31), ("SIGKILL", 12)]]  # fmt: skip
    rows = {row.signal: row for row in inject(kills, reference)}
    for kill in kills[:2]:  # exit 130 and 143 (inject checks), having said what was reached
        said_what_was_reached(kill)
    assert (
        rows["SIGINT"].stopped_at == 12 and rows["SIGTERM"].stopped_at == 32
    )  # at the next step boundary
    for row in rows.values():
        assert row.max_diff == 0, row  # bit-exact: the same float operations in the same order
    # SIGINT and SIGTERM save on the way out; SIGKILL repeats the steps since the last save.
    assert rows["SIGINT"].lost == rows["SIGTERM"].lost == 0
    assert 0 < rows["SIGKILL"].lost <= EVERY, rows["SIGKILL"]


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_from_its_last_save(
    tmp_path: Path, two_photos: Path
) -> None:
    """SIGKILL of the first process (the launcher): the other stops at its next exchange; the
    run resumes from the last periodic or level-switch save and ends as the uninterrupted run."""
    two = ["--trainer.accelerator=cpu", "--trainer.devices=2"]
    reference = reference_run(
        tmp_path / "reference", args(tmp_path / "reference", two_photos, *two), 2
    )
    killed = Kill(
        "SIGKILL", 12, tmp_path / "killed", args(tmp_path / "killed", two_photos, *two), processes=2
    )
    [row] = inject([killed], reference)
    assert row.max_diff == 0, row
    assert 0 < row.lost <= EVERY, row
