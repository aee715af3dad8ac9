"""The one place that writes a run's files: PNGs, the reconstruction sheet, ``results.json``, and
the lines a run prints at its end (a sweep's summaries: ``summaries``)."""

from __future__ import annotations

import importlib.util
import json
import shlex
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.v2.functional import pil_to_tensor
from torchvision.utils import make_grid, save_image

from slp_lightning.data.file_names import file_stem

RECONSTRUCTIONS = "reconstructions"


def png_path(run_dir: str | Path, name: str, level: int | None = None) -> Path:
    """Where target ``name``'s final PNG goes, or, with ``level``, the one of the end of its
    phase ``level``."""
    ending = ".png" if level is None else f"_level{level}.png"
    return Path(run_dir) / RECONSTRUCTIONS / f"{file_stem(name)}{ending}"


def write_png(image: Tensor, run_dir: str | Path, name: str, level: int | None = None) -> Path:
    """Save one image (3, H, W) in [0, 1] as target ``name``'s PNG (``png_path``)."""
    path = png_path(run_dir, name, level)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image.float().cpu(), path)
    return path


def _read_png(path: Path) -> Tensor:
    return pil_to_tensor(Image.open(path).convert("RGB")).float() / 255


def write_sheet(
    targets: Tensor | None,
    names: list[str],
    levels: int,
    run_dir: str | Path,
    captions: list[tuple[str, str]] | None = None,
) -> Path:
    """One row per image: the target, then ``I_r`` at the end of each phase, coarse to fine.

    ``targets`` is (N, C, H, W) with C = 1 or 3, or ``None`` (features without images: the
    first column is blank); the sheet is RGB. The columns start at the
    coarsest of the ``levels`` phases that any image reached, so a baseline run (no pyramid: all
    levels on from the start) shows the target and the result. Phases that never ran (a budget
    ended the run first) are left blank. ``captions`` (one ``(under the target, under the
    result)`` per image, lines split by ``\\n``: ``sheet_captions``) are written below.
    """
    folder = Path(run_dir) / RECONSTRUCTIONS
    coarsest = next(
        (k for k in range(levels, 1, -1) for n in names if png_path(run_dir, n, k).exists()), 1
    )
    # Without targets, the tiles' size is that of the PNGs the run wrote.
    size = (
        targets.shape[-2:]
        if targets is not None
        else _read_png(next(folder.glob("*.png"))).shape[-2:]
    )
    blank = torch.ones(3, *size)
    lines = max((caption.count("\n") + 1 for row in captions or [] for caption in row), default=0)
    tiles = []
    for row, name in enumerate(names):
        row_tiles = [blank if targets is None else targets[row].float().cpu().expand(3, -1, -1)]
        for level in range(coarsest, 0, -1):
            png = png_path(run_dir, name, level)
            row_tiles.append(_read_png(png) if png.exists() else blank)
        if lines:
            under = ["", *[""] * (coarsest - 1), ""]
            under[0], under[-1] = captions[row]
            row_tiles = [captioned(tile, text, lines) for tile, text in zip(row_tiles, under)]
        tiles += row_tiles
    path = Path(run_dir) / "sheet.png"
    save_image(make_grid(tiles, nrow=coarsest + 1, padding=4, pad_value=1.0), path)
    return path


@cache
def caption_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The captions' font: matplotlib's DejaVu Sans, which has ✓, σ and ×; Pillow's own font
    draws each of them as the same empty box. Pillow's when matplotlib's file is not there."""
    spec = importlib.util.find_spec("matplotlib")  # the path alone: matplotlib is not imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def captioned(tile: Tensor, text: str, lines: int) -> Tensor:
    """``tile`` (3, H, W) with a white band of ``lines`` lines below it holding ``text``."""
    width = tile.shape[-1]
    font = caption_font(max(8, min(14, width // 11)))
    height = lines * (font.size + 2) + 2
    band = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(band).multiline_text((2, 1), text, fill="black", font=font, spacing=2)
    return torch.cat([tile, pil_to_tensor(band).float() / 255], dim=1)


def sheet_captions(results: dict) -> list[tuple[str, str]]:
    """Each image's captions in the sheet, from its ``results.json`` entry: under the target the
    evaluation classifier's label of it and, in an audit, what was sent (``quantise:2, aware``)
    and whether the task kept its class (``task ✓``); under the result the normalised error, PSNR
    and the classifier's label of the reconstruction (✓ when it is the target's)."""
    threat = results.get("threat")
    captions = []
    for image in results["images"]:
        measures = [f"{100 * image['normalized_error']:.1f} %"]
        measures += [f"{image['psnr']:.1f} dB"] if image.get("psnr") is not None else []
        target, result = [], " · ".join(measures)
        scores = image.get("semantic")
        if scores:
            target.append(scores["target"]["name"])
            result += (
                f"\n{scores['reconstruction']['name']}{' ✓' if scores['top1_agreement'] else ''}"
            )
        if threat:
            kept = image.get("utility_top1_agreement")
            task = "" if kept is None else f" · task {'✓' if kept else '✗'}"
            target.append(
                f"{threat['spec']}, {'aware' if threat['defence_aware'] else 'unaware'}{task}"
            )
        captions.append(("\n".join(target), result))
    return captions


#: the measures of each image that ``results.json`` and a summary average (``mean_<measure>``)
MEASURES = ("normalized_error", "relative_error", "psnr", "ssim", "hf_ratio")


def image_means(
    images: Sequence[dict], measures: Iterable[str] = MEASURES
) -> dict[str, float | None]:
    """``mean_<measure>`` over ``images`` (``results.json``'s entries) of each of ``measures``;
    ``None`` where an image has no value (no target images: no PSNR) or there is no image."""

    def mean(measure: str) -> float | None:
        values = [image.get(measure) for image in images]
        return None if not values or None in values else sum(values) / len(values)

    return {f"mean_{measure}": mean(measure) for measure in measures}


def write_results(
    path: Path,
    settings: dict,
    n_f: float,
    names: list[str],
    errors: dict[str, Tensor],
    levels: Tensor,
    switch_steps: Tensor,
    steps: int,
    status: str,
    mean_normalized_error: float | None = None,
    semantic: dict | None = None,
    utility: Tensor | None = None,
    utility_about: str | None = None,
) -> dict:
    """Write ``results.json`` and return what it holds: the run's ``settings``
    (``FeatureInversion.settings``), its step count, status and N_f, and per image its errors on
    the final ``I_r`` (``errors`` as from ``Inversion.evaluate``; PSNR, SSIM and the
    high-frequency ratio ``None`` without target images), final level and the steps of its
    switches (``switch_steps``, -1 for those not made), with means (``mean_normalized_error`` as
    the cross-process metric computed it, when given). With ``semantic``
    (``semantic.as_results``: an evaluation classifier's scores), each image also has
    ``semantic``, the results ``semantic`` (the classifier, what each field means) and the means
    ``mean_top1_agreement``, ``mean_top5``, ``mean_p_target_class`` and
    ``mean_eval_feature_distance``; without it none of these keys exist. An audit's
    ``utility_about`` (``threat.Threat.utility``) gives ``utility`` (what was measured, or why it
    could not be) and, with ``utility`` (N,), each image's ``utility_top1_agreement`` and the
    mean ``mean_utility``; with a threat, ``victim_normalized_error`` too."""
    measures = ["feature_error", "relative_error", "normalized_error", "psnr", "ssim", "hf_ratio"]
    measures += ["victim_normalized_error"] if "victim_normalized_error" in errors else []
    images = [
        {
            "name": name,
            "file": file_stem(
                name
            ),  # the stem of its PNGs: the name, unless that is no safe file name
            # No target images (features were given): no PSNR, SSIM or high-frequency ratio.
            **{m: float(errors[m][row]) if m in errors else None for m in measures},
            "final_level": int(levels[row]),
            "switch_steps": [int(step) for step in switch_steps[row] if step >= 0],
        }
        for row, name in enumerate(names)
    ]
    if semantic is not None:
        for image, scores in zip(images, semantic["images"], strict=True):
            image["semantic"] = scores
    if utility is not None:
        for image, kept in zip(images, utility.tolist(), strict=True):
            image["utility_top1_agreement"] = bool(kept)
    means = image_means(images, measures[1:])
    if mean_normalized_error is not None:  # as the cross-process metric computed it
        means["mean_normalized_error"] = mean_normalized_error
    results = {
        **settings,
        "steps": steps,
        "status": status,
        "N_f": n_f,
        "images": images,
        **means,
        **({"semantic": semantic["about"], **semantic["means"]} if semantic is not None else {}),
    }
    if utility_about is not None:
        results["utility"] = utility_about
        results["mean_utility"] = None if utility is None else float(utility.double().mean())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def write_visual_results(
    path: Path, settings: dict, names: list[str], objectives: list[str], activation: Tensor,
    natural: Tensor | None, levels: Tensor, switch_steps: Tensor, steps: int, status: str,
    labels: dict | None = None,
) -> dict:  # fmt: skip
    """Write a visualisation's ``results.json`` and return what it holds: its ``settings``, step
    count and status, and per row its ``objective``, the ``activation`` reached (the objective on
    the final image), its PNG (``png``, relative to the run folder), and with ``natural``
    (N, M: each row's objective on M natural photographs) the best of them (``natural_best``)
    and the share of it reached (``natural_share``); with ``labels`` (``semantic.label_results``)
    the independent classifier's ``semantic`` labels; the means ``mean_activation``,
    ``mean_natural_share`` and, for class objectives, ``mean_transfer_top1`` / ``_top5``."""
    best = None if natural is None else natural.max(dim=1).values
    images = []
    for row, name in enumerate(names):
        value = float(activation[row])
        image = {
            "name": name, "file": file_stem(name), "png": f"{RECONSTRUCTIONS}/{file_stem(name)}.png",
            "objective": objectives[row], "activation": value,
            "natural_best": None if best is None else float(best[row]),
            "natural_share": None if best is None or best[row] <= 0 else value / float(best[row]),
            "final_level": int(levels[row]), "switch_steps": [int(s) for s in switch_steps[row] if s >= 0],
        }  # fmt: skip
        if labels is not None:
            image["semantic"] = labels["images"][row]
        images.append(image)

    def mean(key: str) -> float | None:
        values = [i[key] for i in images if i[key] is not None]
        return sum(values) / len(values) if values else None

    results = {
        **settings, "steps": steps, "status": status, "images": images,
        "mean_activation": mean("activation"), "mean_natural_share": mean("natural_share"),
        **({"semantic": labels["about"], **labels["means"]} if labels is not None else {}),
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def write_atlas(
    results: dict, run_dir: str | Path, strongest: dict[str, list[Tensor]] | None = None
) -> Path:
    """``sheet.png`` of a visualisation: a tile per row (its final ``I_r``), captioned with its
    objective, the activation reached (its share of the best natural photograph's) and the
    classifier's label (✓ when it is the class maximised); with ``strongest`` (name -> images),
    a row's strongest natural photographs beside it."""
    run_dir = Path(run_dir)
    tiles = []
    extra = max((len(v) for v in (strongest or {}).values()), default=0)
    for image in results["images"]:
        tile = _read_png(run_dir / image["png"])
        share = image.get("natural_share")
        lines = [
            image["objective"],
            f"{image['activation']:.3g}" + ("" if share is None else f" · {100 * share:.0f} %"),
        ]
        label = image.get("semantic")
        if label:
            lines.append(label["top1"]["name"] + (" ✓" if label["intended_top1"] else ""))
        row = [tile] + [
            p.float().cpu().expand(3, -1, -1) for p in (strongest or {}).get(image["name"], [])
        ]
        row += [torch.ones_like(tile)] * (1 + extra - len(row))
        tiles += [captioned(t, "\n".join(lines) if i == 0 else "", 3) for i, t in enumerate(row)]
    columns = 1 + extra if extra else min(8, len(results["images"])) or 1
    path = run_dir / "sheet.png"
    save_image(make_grid(tiles, nrow=columns, padding=4, pad_value=1.0), path)
    return path


def measured(means: dict) -> str:
    """``": mean normalised error 3.14 %, mean PSNR 13.60 dB"`` of ``means`` (each left out
    when ``None``), and ``", top-1 agreement 67 %"`` when an evaluation classifier scored the
    run; ``""`` when none is known."""
    error, psnr = means.get("mean_normalized_error"), means.get("mean_psnr")
    agreement = means.get("mean_top1_agreement")
    activation, share = means.get("mean_activation"), means.get("mean_natural_share")
    transfer = means.get("mean_transfer_top5")
    measures = [f"mean activation {activation:.4g}"] if activation is not None else []
    measures += (
        [f"{100 * share:.0f} % of the best natural photograph's"] if share is not None else []
    )
    measures += [f"transfer top-5 {100 * transfer:.0f} %"] if transfer is not None else []
    measures += [f"mean normalised error {100 * error:.2f} %"] if error is not None else []
    measures += [f"mean PSNR {psnr:.2f} dB"] if psnr is not None else []
    measures += [f"top-1 agreement {100 * agreement:.0f} %"] if agreement is not None else []
    return ": " + ", ".join(measures) if measures else ""


def report(headline: str, means: dict, files: dict[str, Path | str], logdir: Path) -> str:
    """The lines a run, a sweep or a chunked run prints at its end: ``headline`` with the mean
    normalised error and mean PSNR of ``means`` (``measured``: what ``results.json``, a
    ``summary.csv`` row or ``summary.json`` hold; PSNR is ``None`` when the targets are
    unknown), a ``label: path`` line per entry of ``files``, and the command that shows
    ``logdir`` in TensorBoard."""
    width = max((len(label) for label in files), default=0) + 1
    return "\n".join([
        headline + measured(means),
        *(f"{label + ':':<{width}} {path}" for label, path in files.items()),
        f"tensorboard --logdir {shlex.quote(str(logdir))}",
    ])  # fmt: skip


def remove_unstarted_run(run_dir: Path, plan: str | None = None) -> None:
    """Delete ``run_dir`` when it holds only what a run writes before its first step (config,
    hparams, TensorBoard's event file, an empty ``checkpoints/``, the ``plan`` file of a sweep),
    and then its parent when empty: a run that failed at the start leaves no empty
    ``version_<n>`` behind."""
    if not run_dir.is_dir():
        return
    entries = list(run_dir.iterdir())
    startup = [
        entry for entry in entries
        if entry.name in ("config.yaml", "hparams.yaml", plan) or entry.name.startswith("events.out.tfevents.")
        or (entry.name == "checkpoints" and entry.is_dir() and not any(entry.iterdir()))
    ]  # fmt: skip
    if len(startup) < len(entries):
        return
    for entry in entries:
        if entry.is_dir():
            entry.rmdir()
        else:
            entry.unlink()
    run_dir.rmdir()
    if not any(run_dir.parent.iterdir()):
        run_dir.parent.rmdir()
