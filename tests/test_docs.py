"""The documentation: every ``python -m slp_lightning fit`` command the README and the site show
parses (``--print_config``: every flag exists and every value has its type), and the site's
pages are the ones ``mkdocs.yml`` lists (``.ci/run`` builds the site in strict mode)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from slp_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# What a command needs that a test machine may not have: such commands are shown, not parsed.
NEEDS = ("# needs ",)


def commands(page: Path) -> list[list[str]]:
    """The arguments after ``slp_lightning`` of each ``fit`` command in the page's bash blocks."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if "slp_lightning fit" not in line or any(mark in line for mark in NEEDS):
                continue
            command = line.split("slp_lightning", 1)[1].split("&&")[0].split(" # ")[0]
            found.append(shlex.split(command, comments=True))
    return found


CASES = [(page, args) for page in PAGES for args in commands(page)]


def test_the_pages_show_commands() -> None:
    assert len(CASES) > 40 and {page.name for page, _ in CASES} >= {"README.md", "leakage-audit.md"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "args"), CASES, ids=[f"{p.name}:{' '.join(a)[:60]}" for p, a in CASES]
)
def test_every_command_a_page_shows_parses(
    page: Path,
    args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(ROOT)  # configs/ as the pages' commands see it
    with pytest.raises(SystemExit) as stop:
        main([*args, "--print_config"])
    assert stop.value.code in (0, None), (page, args, capsys.readouterr().err[-2000:])
    assert ("usage:" if "--help" in args else "model:") in capsys.readouterr().out


def test_the_site_lists_every_page() -> None:
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def pages(entry: object) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, dict):
            return [p for value in entry.values() for p in pages(value)]
        return [p for item in entry for p in pages(item)]

    listed = set(pages(site["nav"])) - {"lab-notebook/RESULTS.md"}
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert listed == on_disk
