"""The contact sheet has a column per phase that ran: baselines show only target and result."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from slp_lightning.outputs import write_png, write_sheet

SIDE, PAD = 16, 4


def _columns(sheet: Path) -> int:
    return (Image.open(sheet).width - PAD) // (SIDE + PAD)


@pytest.mark.parametrize(
    ("written", "columns"),
    [({"a": [1], "b": [1]}, 2), ({"a": [3, 2, 1], "b": [3, 2, 1]}, 4), ({"a": [3], "b": [3, 2]}, 4)],
    ids=["baseline", "slp", "slp-stopped-early"],
)
def test_sheet_has_the_target_then_each_phase_reached(
    written: dict[str, list[int]], columns: int, tmp_path: Path
) -> None:
    for name, levels in written.items():
        for level in levels:
            write_png(torch.rand(3, SIDE, SIDE), tmp_path, f"{name}_level{level}")
    sheet = write_sheet(torch.rand(2, 1, SIDE, SIDE), ["a", "b"], 3, tmp_path)
    assert _columns(sheet) == columns
    assert Image.open(sheet).height == 2 * (SIDE + PAD) + PAD
