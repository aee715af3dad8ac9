"""Datasets in chunks: bounded batches, one results.jsonl and summary, resume skips what is done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slp_lightning.chunks import RESULTS, SUMMARY, claim
from slp_lightning.cli import command, main
from slp_lightning.data import TargetImages
from slp_lightning.distributed import Workers

from helpers import tiny_args


@pytest.fixture
def seven(photos: Path, tmp_path: Path) -> Path:
    """Seven images: the three photographs, repeated under other names."""
    folder = tmp_path / "seven"
    folder.mkdir()
    sources = sorted(photos.glob("*.png"))
    for i in range(7):
        shutil.copy(sources[i % 3], folder / f"img{i}_{sources[i % 3].name}")
    return folder


def lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / RESULTS).read_text().splitlines()]


@pytest.mark.slow
def test_a_folder_in_chunks_then_resumed_after_a_lost_chunk(seven: Path, tmp_path: Path) -> None:
    args = tiny_args(tmp_path / "logs", seven, "--data.chunk_size=3", "--trainer.max_steps=12")
    main(args)
    run_dir = next((tmp_path / "logs").glob("alexnet_conv2_chunks/version_0"))
    chunks = lines(run_dir)
    assert [c["chunk"] for c in chunks] == [0, 1, 2]
    assert [len(c["images"]) for c in chunks] == [3, 3, 1]  # never more than chunk_size at once
    assert len({c["N_f"] for c in chunks}) == 1  # one normaliser for the whole dataset
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["images"] == 7 and 0 < summary["mean_normalized_error"] < 2
    assert sorted(p.name for p in run_dir.glob("chunk_*")) == ["chunk_0000", "chunk_0001", "chunk_0002"]

    # As if the run had stopped during its last chunk: that chunk's line and folder are gone.
    (run_dir / RESULTS).write_text("".join(json.dumps(c) + "\n" for c in chunks[:2]))
    shutil.rmtree(run_dir / "chunk_0002")
    first = (run_dir / "chunk_0000" / "results.json").stat().st_mtime_ns
    main([*args, f"--ckpt_path={run_dir}"])
    assert (run_dir / "chunk_0000" / "results.json").stat().st_mtime_ns == first  # not redone
    assert lines(run_dir) == chunks  # the same results as the uninterrupted run
    assert json.loads((run_dir / SUMMARY).read_text()) == summary
    assert not (tmp_path / "logs" / "alexnet_conv2_chunks" / "version_1").exists()


@pytest.mark.slow
def test_chunked_features_without_images(tmp_path: Path, photos: Path) -> None:
    from slp_lightning.features import TARGET_FEATURES

    main(tiny_args(tmp_path / "a", photos, "--outputs.save_target_features=true", "--trainer.max_steps=1"))
    file = next((tmp_path / "a").glob(f"*/version_0/{TARGET_FEATURES}"))
    main(tiny_args(tmp_path / "b", "", f"--data.features={file}", "--data.chunk_size=2", "--trainer.max_steps=4"))
    run_dir = next((tmp_path / "b").glob("*_chunks/version_0"))
    assert [[i["name"] for i in c["images"]] for c in lines(run_dir)] == [["astronaut", "chelsea"], ["coffee"]]
    assert json.loads((run_dir / SUMMARY).read_text())["mean_psnr"] is None


def test_bad_chunk_settings_say_what_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        TargetImages("skimage:astronaut", chunk_size=0)
    (tmp_path / "old_run").mkdir()
    with pytest.raises(SystemExit) as stop:
        command(tiny_args(tmp_path / "logs", "skimage:astronaut", f"--ckpt_path={tmp_path / 'old_run'}"))
    assert stop.value.code == 2
    assert "is a folder: to resume a chunked run, give its --data.chunk_size too" in capsys.readouterr().err


def test_each_chunk_is_claimed_once_per_launch(tmp_path: Path) -> None:
    first = [Workers(rank=rank, world=2, session="a") for rank in (0, 1)]
    taken = [[index for index in range(4) if claim(tmp_path, worker, index)] for worker in first]
    assert taken == [[0, 1, 2, 3], []]  # the first to ask takes it; nobody takes one twice
    # A resumed run is a new launch: the stopped one's claims do not hold it back.
    assert claim(tmp_path, Workers(rank=1, world=2, session="b"), 2)
    assert claim(tmp_path, Workers(), 0)  # one process claims nothing
