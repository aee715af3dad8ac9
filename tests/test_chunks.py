"""Datasets in chunks: bounded batches, one results.jsonl and summary, resume skips what is done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from slp_lightning.callbacks import PyramidSwitch
from slp_lightning.callbacks import checkpoint as checkpoint_module
from slp_lightning.cli.commands import command, main
from slp_lightning.data.targets import TargetImages
from slp_lightning.module.lightning_model import FeatureInversion
from slp_lightning.running import chunk_sizes, chunks
from slp_lightning.running.chunks import RESULTS, SUMMARY
from slp_lightning.running.dealing import Workers, claim

from helpers import resume_hint, tiny_args


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
    assert sorted(p.name for p in run_dir.glob("chunk_*")) == [
        "chunk_0000",
        "chunk_0001",
        "chunk_0002",
    ]

    # As if the run had stopped during its last chunk: that chunk's line and folder are gone.
    (run_dir / RESULTS).write_text("".join(json.dumps(c) + "\n" for c in chunks[:2]))
    shutil.rmtree(run_dir / "chunk_0002")
    first = (run_dir / "chunk_0000" / "results.json").stat().st_mtime_ns
    # The folder knows its chunk size: the resume need not repeat it (the default, auto, takes it).
    main([*[a for a in args if not a.startswith("--data.chunk_size")], f"--ckpt_path={run_dir}"])
    assert (run_dir / "chunk_0000" / "results.json").stat().st_mtime_ns == first  # not redone
    assert lines(run_dir) == chunks  # the same results as the uninterrupted run
    assert json.loads((run_dir / SUMMARY).read_text()) == summary
    assert not (tmp_path / "logs" / "alexnet_conv2_chunks" / "version_1").exists()


@pytest.mark.slow
def test_chunked_features_without_images(tmp_path: Path, photos: Path) -> None:
    from slp_lightning.data.features import TARGET_FEATURES

    main(
        tiny_args(
            tmp_path / "a", photos, "--outputs.save_target_features=true", "--trainer.max_steps=1"
        )
    )
    file = next((tmp_path / "a").glob(f"*/version_0/{TARGET_FEATURES}"))
    main(
        tiny_args(
            tmp_path / "b",
            "",
            f"--data.features={file}",
            "--data.chunk_size=2",
            "--trainer.max_steps=4",
        )
    )
    run_dir = next((tmp_path / "b").glob("*_chunks/version_0"))
    assert [[i["name"] for i in c["images"]] for c in lines(run_dir)] == [
        ["astronaut", "chelsea"],
        ["coffee"],
    ]
    assert json.loads((run_dir / SUMMARY).read_text())["mean_psnr"] is None


@pytest.mark.slow
def test_a_resume_refuses_other_settings_and_takes_a_lost_line_or_folder(
    photos: Path, tmp_path: Path
) -> None:
    args = tiny_args(tmp_path, photos, "--data.chunk_size=2", "--trainer.max_steps=4")
    main(args)
    run_dir = tmp_path / "alexnet_conv2_chunks" / "version_0"
    chunks = lines(run_dir)
    resume = [*args, f"--ckpt_path={run_dir}"]
    # Another layer: refused before anything runs, naming what differs.
    with pytest.raises(ValueError, match=r"it is a chunked run of another problem \(layer: 'conv2' "
                                         r"\(that run\) vs 'conv1' \(this run\)\)"):  # fmt: skip
        main([*resume, "--model.layer=conv1"])
    # The last chunk ended (its last.ckpt is at max_steps), its line never written: it counts.
    (run_dir / RESULTS).write_text(json.dumps(chunks[0]) + "\n")
    main(resume)
    assert lines(run_dir) == chunks
    # A finished chunk's folder deleted: said, its results kept.
    shutil.rmtree(run_dir / "chunk_0000")
    with pytest.warns(UserWarning, match="chunk_0000: finished .*, but the folder is gone"):
        main(resume)
    assert lines(run_dir) == chunks


@pytest.mark.slow
def test_a_stopped_chunk_says_to_resume_its_run_folder_and_that_resumes(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = tiny_args(tmp_path, photos, "--data.chunk_size=2", "--trainer.max_steps=4")
    said: list[str] = []
    monkeypatch.setattr(checkpoint_module, "rank_zero_info", said.append)
    step_end = PyramidSwitch.on_train_batch_end

    def power_cut(self: PyramidSwitch, trainer: Trainer, *rest: object) -> None:
        step_end(self, trainer, *rest)
        if trainer.global_step == 2 and Path(trainer.log_dir).name == "chunk_0001":
            raise RuntimeError("power cut")

    monkeypatch.setattr(PyramidSwitch, "on_train_batch_end", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        main(args)
    run_dir = tmp_path / "alexnet_conv2_chunks" / "version_0"
    command = resume_hint(said[-1], 2)
    assert command == ["fit", "--config", str(run_dir / "config.yaml"), "--ckpt_path", str(run_dir)]
    monkeypatch.undo()
    main(command)  # the command the stop printed, as it is
    assert [(c["chunk"], c["steps"]) for c in lines(run_dir)] == [(0, 4), (1, 4)]


@pytest.mark.parametrize(
    ("setup", "chunk_size", "message"),
    [
        (None, 2, "is not a chunked run's folder (it has no chunks.json): resume a single run from its"),
        ({"chunk_size": 3}, 2, "was chunked by 3, not 2: give --data.chunk_size 3 (or auto) to resume it"),
        ("file", 2, "is a checkpoint file: a chunked run resumes from its folder"),
    ],
)  # fmt: skip
def test_bad_resumes_of_chunked_runs_say_what_to_give(
    tmp_path: Path, photos: Path, setup: dict | str | None, chunk_size: int, message: str,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    old = tmp_path / "old_run"
    old.mkdir()
    if isinstance(setup, dict):
        (old / "chunks.json").write_text(json.dumps(setup))
    if setup == "file":
        (old := old / "last.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        command(
            tiny_args(
                tmp_path / "logs", photos, f"--data.chunk_size={chunk_size}", f"--ckpt_path={old}"
            )
        )
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("bad", [0, -3, "big"])
def test_a_chunk_size_is_a_count_auto_or_none(bad: int | str) -> None:
    with pytest.raises(ValueError, match=f"chunk_size must be an integer >= 1; got {bad!r}"):
        TargetImages("skimage:astronaut", chunk_size=bad)


def test_auto_chunks_are_sized_by_the_device_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    small, large = (
        FeatureInversion(network="alexnet", layer="conv2", weights="random", image_size=size)
        for size in (64, 128)
    )
    per_target = chunk_sizes.target_bytes(small)
    assert (
        3.5 < chunk_sizes.target_bytes(large) / per_target < 4.5
    )  # activations and images grow with the area
    for memory, expected in [
        (10 * per_target, 5),
        (per_target, 1),
        (10**15, chunk_sizes.MAX_AUTO_CHUNK),
    ]:
        monkeypatch.setattr(chunk_sizes, "device_memory", lambda _device, memory=memory: memory)
        assert chunk_sizes.auto_chunk_size(small, torch.device("cpu")) == expected


@pytest.mark.slow
def test_the_default_chunk_size_chunks_what_does_not_fit(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_sizes, "MAX_AUTO_CHUNK", 2)  # as if two targets filled the device
    main(tiny_args(tmp_path, photos, "--trainer.max_steps=3"))
    run_dir = tmp_path / "alexnet_conv2_chunks" / "version_0"
    assert [len(c["images"]) for c in lines(run_dir)] == [2, 1]
    plan = json.loads((run_dir / "chunks.json").read_text())
    assert plan["chunk_size"] == 2 and plan["targets"] == 3 and plan["problem"]["layer"] == "conv2"


def test_each_chunk_is_claimed_once_per_launch(tmp_path: Path) -> None:
    first = [Workers(rank=rank, world=2, session="a") for rank in (0, 1)]
    names = [chunks.chunk_name(index) for index in range(4)]
    taken = [[name for name in names if claim(tmp_path, worker, name)] for worker in first]
    assert taken == [names, []]  # the first to ask takes it; nobody takes one twice
    # A resumed run is a new launch: the stopped one's claims do not hold it back.
    assert claim(tmp_path, Workers(rank=1, world=2, session="b"), names[2])
    assert claim(tmp_path, Workers(), names[0])  # one process claims nothing
