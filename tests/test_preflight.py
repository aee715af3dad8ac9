"""Checks before the first step: an output root the run could not write in is one sentence."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from slp_lightning.cli.commands import command
from slp_lightning.errors import ArgumentError
from slp_lightning.running.preflight import ACCEPTED_ROOT, check_output_root

from helpers import tiny_args


def _refused(root: Path | str) -> str:
    with pytest.raises(ArgumentError) as error:
        check_output_root(root)
    assert error.value.arguments == (
        "Trainer.default_root_dir",
    )  # named --trainer.default_root_dir
    assert error.value.__cause__ is None
    return str(error.value)


def test_a_root_that_is_a_file_or_lies_under_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file")
    assert (
        _refused(tmp_path / "logs")
        == f"default_root_dir {tmp_path / 'logs'} is a file; {ACCEPTED_ROOT}"
    )
    under = tmp_path / "logs" / "runs" / "today"
    assert _refused(under) == (
        f"default_root_dir {under} cannot be made: {tmp_path / 'logs'} is a file; {ACCEPTED_ROOT}"
    )


def test_a_read_only_root_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "read_only"
    root.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes whatever the modes say: refuse as the kernel would others

        def denied(**kwargs: object) -> str:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkdtemp", denied)
    assert _refused(root / "logs") == (
        f"default_root_dir {root / 'logs'} cannot be written: making a folder in {root} fails "
        f"(Permission denied); {ACCEPTED_ROOT}"
    )


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's /proc")
def test_a_root_where_nothing_can_be_made_is_refused_for_root_too() -> None:
    assert "cannot be written: making a folder in /proc fails" in _refused(
        "/proc/slp_lightning_logs"
    )


def test_a_writable_root_passes_and_nothing_is_left_behind(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    check_output_root(tmp_path / "logs")
    check_output_root(tmp_path / "new" / "logs")  # made by the run, not by the check
    assert [p.name for p in tmp_path.iterdir()] == ["logs"] and not any(
        (tmp_path / "logs").iterdir()
    )


def test_the_command_line_refuses_a_root_that_is_a_file_in_one_line(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "logs").write_text("not a folder")
    with pytest.raises(SystemExit) as stop:
        command(tiny_args(tmp_path / "logs", photos))
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"error: --trainer.default_root_dir {tmp_path / 'logs'} is a file;"
    )
