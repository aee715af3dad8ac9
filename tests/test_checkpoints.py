"""Checkpoints: last.ckpt is always the newest state, and reading one never runs its code."""

import inspect
import json
import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch.cli import LightningCLI

from slp_lightning.cli.commands import main
from slp_lightning.maths.schedule import SwitchSchedule
from slp_lightning.module.resume import migrated
from slp_lightning.running.chunks import PLAN, RESULTS

from helpers import refused, tiny_args


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    """A run with level switches and step checkpoints that ends between two of them."""
    root = tmp_path_factory.mktemp("runs")
    main(tiny_args(root, photos / "coffee.png", "--trainer.max_steps=45",
                   "--checkpoint.every_n_train_steps=20"))  # fmt: skip
    return root / "alexnet_conv2" / "version_0"


@pytest.mark.slow  # every test with ``run`` shares its 10 s
def test_last_checkpoint_holds_the_final_step(run: Path) -> None:
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch=0-step=40.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)  # what the tool reads it with
    assert last["global_step"] == 45
    assert (last["state_dict"]["schedule.switch_steps"] >= 0).any()  # the run did switch levels


def resume(run: Path, images: Path, *extra: str) -> None:
    main(tiny_args(run.parents[1], images, "--trainer.max_steps=45", *extra,
                   f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))  # fmt: skip


@pytest.mark.slow
def test_resume_refuses_other_images(run: Path, photos: Path) -> None:
    with pytest.raises(
        ValueError, match=r"images: \['coffee'\] \(checkpoint\) vs \['chelsea'\] \(this run\)"
    ):
        resume(run, photos / "chelsea.png", "--trainer.max_steps=90")


@pytest.mark.slow
def test_resume_refuses_another_image_size_and_leaves_no_run_folder(
    run: Path, photos: Path
) -> None:
    """Also the guard of ``cli.InversionCLI._parse_ckpt_path``, which overrides a private method
    of LightningCLI: were Lightning to stop calling it, the checkpoint's image_size (64) would
    silently replace the command line's (72) and this run would resume instead of being refused."""
    assert "self._parse_ckpt_path()" in inspect.getsource(LightningCLI.__init__), (
        "LightningCLI no longer calls _parse_ckpt_path: InversionCLI's override is dead"
    )
    with pytest.raises(
        ValueError, match=r"another problem \(image_size: 64 \(checkpoint\) vs 72 \(this run\)\)"
    ):
        resume(run, photos / "coffee.png", "--trainer.max_steps=90", "--model.image_size=72")
    assert list(run.parent.iterdir()) == [run]  # the refused run's version_1 is gone


@pytest.mark.slow
def test_resuming_a_finished_run_says_so_and_makes_no_new_run(
    run: Path, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = sorted(run.parent.iterdir())
    resume(run, photos / "coffee.png")
    assert (
        "is a finished run (it reached step 45, and --trainer.max_steps is 45"
        in capsys.readouterr().out
    )
    assert sorted(run.parent.iterdir()) == runs


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True])
def test_a_resume_reads_its_checkpoint_as_tensors_only_and_goes_on(
    run: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    """Our own checkpoints load with weights_only=True, both in the package and in Lightning's own
    load (a single run's file, and a chunk's last.ckpt in a chunked run's folder)."""
    ckpt = run / "checkpoints" / "last.ckpt"
    if chunked:  # a one-image chunked run stopped during its only chunk
        (tmp_path / "chunked" / "chunk_0000" / "checkpoints").mkdir(parents=True)
        (tmp_path / "chunked" / PLAN).write_text(json.dumps({"chunk_size": 1, "targets": 1}))
        shutil.copy(ckpt, ckpt := tmp_path / "chunked" / "chunk_0000" / "checkpoints" / "last.ckpt")
    load, calls = torch.load, []
    monkeypatch.setattr(
        torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or load(*a, **k)
    )
    main(tiny_args(tmp_path, photos / "coffee.png", "--trainer.max_steps=50",
                   f"--ckpt_path={ckpt.parents[2] if chunked else ckpt}"))  # fmt: skip
    assert calls == [True, True]  # ours (finished / the chunk's check), then Lightning's
    if chunked:
        assert json.loads((tmp_path / "chunked" / RESULTS).read_text())["steps"] == 50
    else:
        assert (
            load(tmp_path / "alexnet_conv2" / "version_0" / "checkpoints" / "last.ckpt")[
                "global_step"
            ]
            == 50
        )


class Touch:
    """Unpickling this creates ``marker``: the code a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_checkpoint_whose_unpickling_runs_code_is_refused_and_never_run(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, chunked: bool
) -> None:  # fmt: skip
    # Asks torch to unpickle anything when the caller does not say weights_only=True itself.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "code_ran"
    folder = tmp_path / "chunked" / "chunk_0000" / "checkpoints" if chunked else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"global_step": 1, "state_dict": {}, "x": Touch(marker)}, evil := folder / "last.ckpt"
    )
    if chunked:
        (tmp_path / "chunked" / PLAN).write_text(json.dumps({"chunk_size": 1, "targets": 1}))
    try:
        line = refused(capsys, tiny_args(tmp_path / "logs", photos / "coffee.png",
                                         f"--ckpt_path={evil.parents[2] if chunked else evil}"))  # fmt: skip
    finally:  # checked first, whatever the command did next
        assert not marker.exists(), "reading the checkpoint ran its code"
    assert line.startswith(
        f"error: checkpoint {evil} is refused: reading it would call code or build objects other"
    )
    assert "torch.load(weights_only=True); give a .ckpt file this tool wrote" in line
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "it is empty"),
        (b"step: 45\nweights: alexnet\n", "a text file, or corrupt or cut short: IndexError"),
    ],
)  # the exception torch.load gave
def test_an_empty_or_text_checkpoint_is_one_sentence(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture, content: bytes, why: str
) -> None:
    (bad := tmp_path / "last.ckpt").write_bytes(content)
    line = refused(
        capsys, tiny_args(tmp_path / "logs", photos / "coffee.png", f"--ckpt_path={bad}")
    )
    assert line == f"error: cannot read checkpoint {bad} ({why}); give a .ckpt file this tool wrote"


def test_a_checkpoint_of_the_old_layout_is_read_in_the_new_one() -> None:
    """Before the split into modules a checkpoint kept I_pre and the switching state at its top
    level, with switch_steps column j - 1 holding the step level j came on (K = 4 here)."""
    old = {
        "I_pre": torch.zeros(2, 3, 8, 8),
        "finest_on": torch.tensor([1, 3]),
        "switch_steps": torch.tensor([[30, 20, 10], [-1, -1, 12]]),
        **{k: torch.zeros(2) for k in ("phase_best", "phase_start", "last_improved", "done")},
    }
    state = migrated(old)
    assert sorted(state) == sorted(
        ["inversion.I_pre"] + [f"schedule.{k}" for k in SwitchSchedule(2, 4).state_dict()]
    )
    assert state["schedule.switch_steps"].tolist() == [
        [10, 20, 30],
        [12, -1, -1],
    ]  # in the order made
    assert migrated(dict(state)) == state  # a new checkpoint is left as it is
