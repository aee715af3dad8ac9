"""The contact sheet has a column per phase that ran: baselines show only target and result.
Names from data (feature keys, image stems) name files only once made safe and unique."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slp_lightning.cli.commands import main
from slp_lightning.data.file_names import NAME_MAX, file_stem
from slp_lightning.outputs.files import (
    caption_font,
    sheet_captions,
    write_png,
    write_sheet,
)

from helpers import tiny_args

SIDE, PAD = 16, 4


def _columns(sheet: Path) -> int:
    return (Image.open(sheet).width - PAD) // (SIDE + PAD)


@pytest.mark.parametrize(
    ("written", "columns"),
    [
        ({"a": [1], "b": [1]}, 2),
        ({"a": [3, 2, 1], "b": [3, 2, 1]}, 4),
        ({"a": [3], "b": [3, 2]}, 4),
    ],
    ids=["baseline", "slp", "slp-stopped-early"],
)
def test_sheet_has_the_target_then_each_phase_reached(
    written: dict[str, list[int]], columns: int, tmp_path: Path
) -> None:
    for name, levels in written.items():
        for level in levels:
            write_png(torch.rand(3, SIDE, SIDE), tmp_path, name, level)
    sheet = write_sheet(torch.rand(2, 1, SIDE, SIDE), ["a", "b"], 3, tmp_path)
    assert _columns(sheet) == columns
    assert Image.open(sheet).height == 2 * (SIDE + PAD) + PAD


def test_a_safe_name_is_its_own_file_stem_and_others_are_made_safe_and_distinct() -> None:
    assert [file_stem(n) for n in ["astronaut", "a_b", "img.v2", "my photo", "café"]] == [
        "astronaut", "a_b", "img.v2", "my photo", "café"
    ]  # fmt: skip
    unsafe = [
        "/abs/path",
        "../../x",
        "sub/dir",
        "a/b",
        "a\\b",
        ".hidden",
        "..",
        "",
        "a~b",
        "x_level2",
        "é" * 150,
    ]
    stems = [file_stem(n) for n in unsafe]
    assert stems[:3] == ["_abs_path~6d80187b4541", "____x~9cdf6a50100a", "sub_dir~e3f5e63b9b69"]
    # No two share a stem, and none takes a kept name's files: a_b's, or x's phase-2 PNG (x_level2.png).
    assert len(set(stems)) == len(stems) and not {"a_b", "x_level2"} & set(stems)
    for stem in stems:
        assert (
            "/" not in stem
            and "\\" not in stem
            and ".." not in stem
            and stem[0] != "."
            and "~" in stem
        )
    # 300 bytes in 150 characters: cut in bytes, whole characters kept, with the longest ending.
    assert len(f"{stems[-1]}_level999.png".encode()) == NAME_MAX - 1 and stems[-1].startswith(
        "é" * 114 + "~"
    )


def test_names_from_a_features_file_write_only_inside_the_run_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "abs"  # an absolute name, harmless if it escapes
    names = [str(outside), "../../x", "sub/dir", "a_b", "a/b", "é" * 150, "astronaut"]
    torch.save(
        {name: torch.rand(192, 7, 7) for name in names}, features := tmp_path / "f.pt"
    )  # conv2 at 64 px
    main(tiny_args(tmp_path / "logs", "", f"--data.features={features}", "--switch.min_steps=2",
                   "--switch.max_steps_per_level=3", "--trainer.max_steps=8"))  # fmt: skip
    run = tmp_path / "logs" / "alexnet_conv2" / "version_0"
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {features}
    assert sorted(p.relative_to(tmp_path) for p in written if run not in p.parents) == []
    results = json.loads((run / "results.json").read_text())
    assert [i["name"] for i in results["images"]] == names  # the originals, in order
    files = [i["file"] for i in results["images"]]
    assert files[3] == "a_b" and files[6] == "astronaut" and len(set(files)) == len(names)
    pngs = {p.name for p in (run / "reconstructions").iterdir()}
    assert all(
        p.parent.name == "reconstructions"
        for p in written
        if p.suffix == ".png" and p.name != "sheet.png"
    )
    assert [i["final_level"] for i in results["images"]] == [1] * len(names)  # every phase ran
    for file in files:  # each target's final PNG, and one per phase
        assert {f"{file}.png", *(f"{file}_level{k}.png" for k in (3, 2, 1))} <= pngs
    assert len(pngs) == 4 * len(names)  # no file shared
    assert max(len(p.encode()) for p in pngs) <= NAME_MAX


def test_the_sheet_shows_each_images_error_psnr_and_labels_below_it(tmp_path: Path) -> None:
    results = {
        "images": [
            {"name": "a", "normalized_error": 0.031, "psnr": 14.24},
            {"name": "b", "normalized_error": 0.25, "psnr": None,
             "semantic": {"target": {"name": "espresso"}, "reconstruction": {"name": "espresso"},
                          "top1_agreement": True}},
        ]
    }  # fmt: skip
    captions = sheet_captions(results)
    assert captions == [("", "3.1 % · 14.2 dB"), ("espresso", "25.0 %\nespresso ✓")]
    for name in "ab":
        write_png(torch.ones(3, SIDE, SIDE), tmp_path, name, 1)
    plain = Image.open(write_sheet(torch.ones(2, 3, SIDE, SIDE), ["a", "b"], 3, tmp_path)).height
    sheet = Image.open(write_sheet(torch.ones(2, 3, SIDE, SIDE), ["a", "b"], 3, tmp_path, captions))
    assert sheet.height > plain  # two lines of caption below each row
    pixels = torch.from_numpy(np.array(sheet.convert("L"))).float()
    # Dark text in the band below the first row's result (its second column), none below its target.
    band = pixels[PAD + SIDE : PAD + SIDE + (sheet.height - plain) // 2]
    assert (band[:, SIDE + 2 * PAD :] < 128).any() and (band[:, : SIDE + PAD] > 250).all()


def test_the_captions_font_draws_a_check_mark_not_the_missing_glyph_box() -> None:
    font = caption_font(14)
    missing = font.getmask("\ue000")  # a private-use code point: no font draws it
    for mark in "✓σ×":
        glyph = font.getmask(mark)
        assert glyph.size != missing.size or bytes(glyph) != bytes(missing), mark
