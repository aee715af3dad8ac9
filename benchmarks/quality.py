"""This method against the baselines, side by side at the same step budgets, on a photo set.

    python benchmarks/quality.py --quick          # 4 validation photos, 64 px, relu3_3: minutes on 2 cores
    OMP_NUM_THREADS=1 python benchmarks/quality.py --set validation --size 224 --parallel 15 \\
        --layers relu1_2 relu2_2 relu3_3 relu4_3 relu5_2 --budgets 200 500 1000   # the full grid (a GPU)
    python benchmarks/quality.py --set validation --network dsift --budgets 1000   # Table 2, grey SIFT

For each budget, one ``fit`` sweeps ``--methods`` × ``--layers`` over the set's photographs
(``benchmarks/photos.py``: tune on ``tuning``, report ``validation``) with the network's shipped
config, so every method gets the same images, optimiser and step budget. Prints one markdown table
(mean normalised error, PSNR, high-frequency energy ratio per method × budget × layer, and the
top-1 agreement and top-5 of the config's evaluation classifier where it scored the runs), and
the goals checked per cell: ``slp``'s error against each baseline's, per photograph against
``pixel``'s (its wins, and its worst photograph: a stall past 1.25 ×, which a mean hides), its
top-1 agreement against each baseline's and the share asked at that depth, and at shallow layers
its PSNR against the best baseline's; ``--out DIR`` keeps
the runs (sheets, results.json, TensorBoard) instead of a temporary folder and writes
``DIR/contact_<layer>.png`` per layer and budget: a row per photograph, target | each method's
final reconstruction. ``--seeds 0 1 2`` runs every cell once per seed (its starting noise): a
cell is then the mean over seeds, with the range of its mean error, for the deep layers at long
budgets, where one run's mean moves by about a point (RESULTS.md); the sheets show the first seed.
``--deadline SECONDS`` bounds the whole run (a lent GPU's budget,
``benchmarks/gpu.sh``): pieces not started by then are skipped and running fits stopped; the table
and sheets hold what finished, the pieces that did not are named, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.photos import SETS, first_photos  # noqa: E402

CONFIGS = {
    "craft_vgg16_bn": "configs/vgg16_bn_trained.yaml",
    "dsift": "configs/sift_grey.yaml",
    "dsift_color": "configs/sift_color.yaml",
    "alexnet": "configs/alexnet_conv5.yaml",
    "mobilenet_v2": "configs/mobilenet_v2.yaml",  # torchvision's, ImageNet
}
ARCHS = {"mobilenet_v2"}  # torchvision architectures: the config names the network
# What slp's goals compare it with, where a cell has them, and the most of each one's mean error
# slp may have: tv's from the paper-beating goal (README), the others' from the ImageNet issue.
BASELINES = {"pixel": 1.0, "tv": 0.6, "fft": 1.0}
# Where the goals ask PSNR >= the best baseline's + 2 dB: VGG16's first three blocks, MobileNetV2's
# blocks at up to 1/8 of the size.
SHALLOW = {"relu1_2", "relu2_2", "relu3_3", "features.2", "features.4", "features.6"}
# The top-1 agreement asked of slp per MobileNetV2 depth, at one budget: (steps, share).
TOP1_GOALS = {
    **dict.fromkeys(("features.6", "features.7", "features.10", "features.11"), (500, 0.8)),
    **dict.fromkeys(("features.16", "features.17"), (1000, 0.5)),
}
STALL = 1.25  # no stalls: on every photograph slp's error at most this multiple of pixel's


class NotMeasuredError(Exception):
    """A budget × methods × layers piece that gave no rows; the message says why."""


def run_budget(
    args: argparse.Namespace,
    images: Path,
    budget: int,
    methods: list[str],
    layers: list[str] | None,
    root: Path,
    deadline: float | None = None,
    seed: int = 0,
) -> list[dict]:
    """One sweep of ``methods`` × ``layers`` at ``budget`` steps; its summary rows, with per-image
    errors (also appended to ``root/rows.jsonl``, so that a stopped benchmark keeps what finished).
    ``deadline`` (a ``time.monotonic()`` instant) stops the fit there: then, or when the fit
    fails, it raises :class:`NotMeasuredError`."""
    out = root / f"steps_{budget}" / f"seed_{seed}" / "_".join(methods + (layers or []))
    command = [
        sys.executable, "-m", "slp_lightning", "fit", "--config", CONFIGS[args.network],
        *([] if args.network in ARCHS else [f"--model.network={args.network}"]),
        f"--data.images={images}", f"--model.image_size={args.size}",
        f"--trainer.max_steps={budget}", f"--trainer.default_root_dir={out}",
        "--trainer.enable_progress_bar=false", "--checkpoint.every_n_train_steps=100000",
        f"--sweep.methods=[{', '.join(methods)}]", f"--seed_everything={seed}", *args.extra,
    ]  # fmt: skip
    if layers:
        command.append(f"--sweep.layers=[{', '.join(layers)}]")
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise NotMeasuredError("not started: the deadline had passed")
    try:  # the fit starts no processes of its own: killing it (on timeout) stops everything
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "SLP_LIGHTNING_OFFLINE": "1"},
                              stdout=subprocess.DEVNULL, timeout=left)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise NotMeasuredError(f"stopped at the deadline after {left:.0f} s") from None
    if done.returncode:
        raise NotMeasuredError(f"fit exited with status {done.returncode} (its stderr is above)")
    # An --out used before keeps its earlier runs: this fit's is the newest version.
    run = max(out.glob("*_sweep/version_*"), key=lambda p: int(p.name.split("_")[-1]), default=None)
    if run is None:
        raise NotMeasuredError(f"fit wrote no run folder under {out}")
    with open(run / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        results = json.loads((run / row["job"] / "results.json").read_text())
        row["budget"], row["set"], row["size"], row["seed"] = budget, args.set, args.size, seed
        row["per_image"] = {i["name"]: i["normalized_error"] for i in results["images"]}
        # Present when the config's evaluation classifier scored the run (README, Evaluation).
        row["top1"], row["top5"] = results.get("mean_top1_agreement"), results.get("mean_top5")
        row["reconstructions"] = str(run / row["job"] / "reconstructions")
    with open(root / "rows.jsonl", "a") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


def over_seeds(rows: list[dict]) -> list[dict]:
    """One row per method × budget × layer: the mean over its seeds' rows of each mean and of each
    image's error, with ``error_range`` (the lowest and highest mean error) when there are several."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["method"], row["budget"], row["layer"]), []).append(row)
    merged = []
    for runs in cells.values():
        row = dict(runs[0])
        if len(runs) > 1:
            for key in ("mean_normalized_error", "mean_psnr", "mean_hf_ratio", "top1", "top5"):
                if row.get(key) is not None:
                    row[key] = sum(float(run[key]) for run in runs) / len(runs)
            row["per_image"] = {
                name: sum(run["per_image"][name] for run in runs) / len(runs)
                for name in row["per_image"]
            }
            errors = [float(run["mean_normalized_error"]) for run in runs]
            row["error_range"], row["seeds"] = (min(errors), max(errors)), len(runs)
        merged.append(row)
    return merged


def report(rows: list[dict]) -> str:
    """The markdown table and the goals, per cell (means over seeds)."""
    rows = over_seeds(rows)
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    cell = {(r["method"], r["budget"], r["layer"]): r for r in rows}
    lines = ["| method | steps | " + " | ".join(layers) + " |", "|---|---|" + "---|" * len(layers)]
    for method, budget in dict.fromkeys((r["method"], r["budget"]) for r in rows):
        values = []
        for layer in layers:
            r = cell.get((method, budget, layer))
            values.append("" if r is None else f"{100 * float(r['mean_normalized_error']):.1f} %"
                          + spread(r) + f" / {float(r['mean_psnr']):.1f} dB / "
                          f"{float(r['mean_hf_ratio']):.2f}" + semantic(r))  # fmt: skip
        lines.append(f"| {method} | {budget} | " + " | ".join(values) + " |")
    scored = any(r.get("top1") is not None for r in rows)
    lines += [
        "",
        "Cells: mean normalised error / mean PSNR / high-frequency energy ratio (1 = the "
        "target's fine detail)"
        + (
            " (over seeds: the means, and in brackets the range of the mean error)"
            if any("error_range" in r for r in rows)
            else ""
        )
        + (
            " / top-1 agreement / target's class in the top-5, by the evaluation classifier."
            if scored
            else "."
        ),
    ]
    checked = []
    for budget in dict.fromkeys(r["budget"] for r in rows):
        for layer in layers:
            slp = cell.get(("slp", budget, layer))
            baselines = {
                m: cell[(m, budget, layer)] for m in BASELINES if (m, budget, layer) in cell
            }
            if slp is not None and baselines:
                checked.append(f"- {budget} steps, {layer}: " + "; ".join(goals(slp, baselines)))
    if checked:
        lines += ["", "Goals per cell (slp against the baselines at the same budget):", ""]
        lines += checked
    return "\n".join(lines)


def goals(slp: dict, baselines: dict[str, dict]) -> list[str]:
    """The goals for one cell, slp's row against each baseline's: mean error within
    ``BASELINES``' bound of each's, within ``STALL`` × plain descent's on every photograph,
    top-1 agreement at least each's (and ``TOP1_GOALS``' share where the cell is one), and at a
    shallow layer PSNR 2 dB over the best baseline's."""
    err, checks = float(slp["mean_normalized_error"]), []
    for method, row in baselines.items():
        ratio, bound = err / float(row["mean_normalized_error"]), BASELINES[method]
        check = f"error {ratio:.2f}× {method}'s ({'met' if ratio <= bound else 'NOT met'}"
        if bound != 1:
            check += f": ≤ {bound}"
        if method == "pixel":  # per photograph too: a mean hides a stall
            ratios = {n: slp["per_image"][n] / max(e, 1e-12) for n, e in row["per_image"].items()}
            wins, worst = sum(r <= 1 for r in ratios.values()), max(ratios, key=ratios.get)
            check += (f"; slp ≤ pixel on {wins}/{len(ratios)} images); worst photograph {worst} "
                      f"{ratios[worst]:.2f}× pixel's ({'met' if ratios[worst] <= STALL else 'NOT met'}"
                      f": ≤ {STALL}× on each")  # fmt: skip
        checks.append(check + ")")
    if slp.get("top1") is not None:
        scored = {m: float(r["top1"]) for m, r in baselines.items() if r.get("top1") is not None}
        top1, best = float(slp["top1"]), max(scored, key=scored.get, default=None)
        check = f"top-1 {100 * top1:.0f} %"
        if best is not None:
            check += (f" against {best}'s {100 * scored[best]:.0f} % "
                      f"({'met' if top1 >= scored[best] else 'NOT met'}: ≥ every baseline's)")  # fmt: skip
        budget, share = TOP1_GOALS.get(slp["layer"], (None, None))
        if budget == slp["budget"]:
            check += f", {'met' if top1 >= share else 'NOT met'}: ≥ {100 * share:.0f} % here"
        checks.append(check)
    if slp["layer"] in SHALLOW:
        psnr = {m: float(r["mean_psnr"]) for m, r in baselines.items()}
        best = max(psnr, key=psnr.get)
        gain = float(slp["mean_psnr"]) - psnr[best]
        checks.append(f"PSNR {gain:+.1f} dB over the best baseline's, {best}'s "
                      f"({'met' if gain >= 2 else 'NOT met'}: ≥ +2)")  # fmt: skip
    return checks


def spread(row: dict) -> str:
    """`` (a–b %)``: the range of a cell's mean error over its seeds, when it has several."""
    if "error_range" not in row:
        return ""
    low, high = row["error_range"]
    return f" ({100 * low:.1f}–{100 * high:.1f} %)"


def semantic(row: dict) -> str:
    """`` / top-1 % / top-5 %`` of a row the evaluation classifier scored, else nothing."""
    if row.get("top1") is None:
        return ""
    return f" / {100 * row['top1']:.0f} % / {100 * row['top5']:.0f} %"


def contact_sheets(rows: list[dict], photos: list[Path], size: int, out: Path) -> list[Path]:
    """Per layer (and budget, when there are several) ``out/contact_<layer>.png``: a row per
    photograph, target | each method's final ``I_r``, a header naming the columns."""
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    written = []
    for budget in budgets:
        for layer in dict.fromkeys(r["layer"] for r in rows):
            cells = [r for r in rows if r["layer"] == layer and r["budget"] == budget]
            columns = ["target"] + [r["method"] for r in cells]
            header = 14
            sheet = Image.new("RGB", (size * len(columns), header + size * len(photos)), "white")
            draw = ImageDraw.Draw(sheet)
            for column, title in enumerate(columns):
                draw.text((column * size + 3, 1), title, fill="black")
            for row, photo in enumerate(photos):
                tiles = [target_tile(photo, size)] + [
                    Image.open(Path(r["reconstructions"]) / photo.name).convert("RGB")
                    for r in cells
                ]
                for column, tile in enumerate(tiles):
                    sheet.paste(tile.resize((size, size)), (column * size, header + row * size))
            suffix = f"_{budget}" if len(budgets) > 1 else ""
            path = out / f"contact_{layer}{suffix}.png"
            sheet.save(path)
            written.append(path)
    return written


def target_tile(photo: Path, size: int) -> Image.Image:
    """The photograph as the runs saw it: short side resized to ``size``, centre-cropped."""
    image = Image.open(photo).convert("RGB")
    scale = size / min(image.size)
    image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                         Image.Resampling.LANCZOS)  # fmt: skip
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="4 validation photos, 64 px, relu3_3, 100 steps"
    )
    parser.add_argument("--set", choices=sorted(SETS), default="validation")
    parser.add_argument("--network", choices=sorted(CONFIGS), default="craft_vgg16_bn")
    parser.add_argument("--layers", nargs="*", default=None, help="default: the config's layer")
    parser.add_argument("--methods", nargs="+", default=["slp", "pixel", "tv"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[200, 500, 1000])
    parser.add_argument("--size", type=int, default=128, help="image side in px")
    parser.add_argument(
        "--photos", type=int, default=None, help="only the first N photographs of the set"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="run budgets × methods as this many processes at once (a GPU has room)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="run every cell once per seed"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="stop after this many seconds: report what finished, name the rest, exit status 1",
    )
    parser.add_argument(
        "extra", nargs="*", help="more fit options after --, e.g. -- --switch.coarse_budget=0.15"
    )
    args = parser.parse_args()
    deadline = None if args.deadline is None else time.monotonic() + args.deadline
    if args.quick:
        args.size, args.photos, args.budgets = 64, 4, [100]
        if args.network == "craft_vgg16_bn" and not args.layers:
            args.layers = ["relu3_3"]
    with tempfile.TemporaryDirectory() as scratch:
        folder, pngs = first_photos(args.set, args.photos, Path(scratch))
        root = args.out or Path(scratch) / "runs"
        root.mkdir(parents=True, exist_ok=True)
        # In parallel, every budget × method × layer is a process of its own, started in the
        # order budget, layer, method (a stopped grid keeps whole cells; give the longest budget
        # first to finish soonest); else one per budget.
        pieces = (
            [
                (b, [m], [la] if la else None, seed)
                for b in args.budgets
                for seed in args.seeds
                for la in args.layers or [None]
                for m in args.methods
            ]
            if args.parallel > 1
            else [(b, args.methods, args.layers, seed) for b in args.budgets for seed in args.seeds]
        )
        missing: list[str] = []

        def run_piece(piece: tuple[int, list[str], list[str] | None, int]) -> list[dict]:
            budget, methods, layers, seed = piece
            try:
                return run_budget(args, folder, budget, methods, layers, root, deadline, seed)
            except NotMeasuredError as reason:
                line = (
                    f"{budget} steps, seed {seed}, {' '.join(methods + (layers or []))}: {reason}"
                )
                missing.append(line)
                print(f"quality.py: {line}", file=sys.stderr, flush=True)
                return []

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            rows = [row for piece_rows in pool.map(run_piece, pieces) for row in piece_rows]
        rows.sort(key=lambda row: row["budget"])  # the table by budget, whatever the run order
    count = len(pngs)
    print(f"{args.network}, {args.set} set ({count} photographs), {args.size} px\n")
    print(report(rows))
    if missing:
        print(f"\nNot measured ({len(missing)} of {len(pieces)} pieces):")
        print("\n".join(f"- {line}" for line in missing))
    sys.stdout.flush()  # the table first: sheets of 224-px runs take a while to write
    first_seed = [row for row in rows if row["seed"] == args.seeds[0]]
    for sheet in contact_sheets(first_seed, pngs, args.size, args.out) if args.out else []:
        print(f"contact sheet: {sheet}")
    if missing:
        sys.exit(1)


if __name__ == "__main__":
    main()
