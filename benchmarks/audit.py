"""The leakage audit's measurement: ImageNet MobileNetV2's features defended, attacked by slp and
the baselines, each knowing the defence and not, with the task's utility beside what they recover.

    python benchmarks/audit.py --quick                 # 4 photographs, 64 px, 60 steps: minutes
    python benchmarks/audit.py --out benchmarks/results/audit --parallel 2   # hours on 2 cores

Each layer × method is one sweep of ``configs/audit_mobilenet_v2.yaml``'s settings (the shipped
128 px and 300 steps) over ``--defences`` and the attacker's knowledge, on a photo set of
``benchmarks/photos.py`` (the validation set unless ``--set``); ``--stand-in`` adds the attack
through a MobileNetV2 of random weights (``--model.attacker_weights random``), over
``--stand-in-defences`` if given. A sweep stopped before its end resumes when the same command
is run again with the same ``--out``. Prints per layer
the table of ``privacy_utility.table`` and the audit's goals; with ``--out`` writes the rows
(``audit_rows.jsonl``), the privacy–utility plot per layer and a sheet of reconstructions per
layer (a row per defence, a column per attack) for two photographs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.photos import SETS, first_photos  # noqa: E402
from benchmarks.quality import target_tile  # noqa: E402
from slp_lightning.outputs import privacy_utility  # noqa: E402

CONFIG = "configs/audit_mobilenet_v2.yaml"
# Chosen by the task's utility on the tuning photographs (RESULTS.md): from about none lost to
# most of it, per defence.
DEFENCES = [
    "none", "noise:0.1", "noise:0.3", "noise:1", "quantise:4", "quantise:3", "quantise:2",
    "topk:0.5", "topk:0.2", "topk:0.1", "dropout:0.1", "dropout:0.3", "dropout:0.5",
]  # fmt: skip
# A layer's own schedule where it differs from the config's (configs/mobilenet_v2.yaml's note).
LAYER_OPTIONS = {"features.10": ["--model.pyramid_levels=3", "--model.compactness=0.1"]}
# The front page's sheet: a strength of each defence that costs much of the task, and the attacks.
SUMMARY_DEFENCES = ["none", "noise:0.3", "quantise:2", "topk:0.2", "dropout:0.3"]
SUMMARY_ATTACKS = ["slp aware", "slp unaware", "fft aware", "tv aware", "pixel aware"]
CHEAP = 5  # percentage points of utility a defence may cost to be cheap


def sweep(
    args: argparse.Namespace, images: Path, layer: str, method: str, extra: list[str], root: Path
) -> list[dict]:
    """One sweep: ``method`` at ``layer`` over the defences; its rows, with each job's folder."""
    out = root / f"{layer}_{method}{'_stand_in' if extra else ''}"
    # A sweep stopped before its summary resumes from its folder, a finished one is read: a grid of
    # hours loses nothing to a stop.
    runs = sorted(out.glob("*_sweep/version_*"), key=lambda run: int(run.name.split("_")[-1]))
    stopped = runs[-1:] if runs and not (runs[-1] / "summary.csv").exists() else []
    command = [
        sys.executable, "-m", "slp_lightning", "fit", "--config", CONFIG, f"--data.images={images}",
        f"--model.layer={layer}", f"--model.image_size={args.size}", f"--trainer.max_steps={args.steps}",
        f"--trainer.default_root_dir={out}", "--trainer.enable_progress_bar=false",
        "--checkpoint.every_n_train_steps=100000", f"--sweep.methods=[{method}]",
        f"--sweep.defences=[{', '.join(args.defences)}]", "--sweep.defence_aware=[true, false]",
        *LAYER_OPTIONS.get(layer, []), *extra, *(f"--ckpt_path={run}" for run in stopped),
    ]  # fmt: skip
    env = {**os.environ, "SLP_LIGHTNING_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    if stopped or not runs:  # a finished sweep is read, not run again
        subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    run = max(out.glob("*_sweep/version_*"), key=lambda p: int(p.name.split("_")[-1]))
    with open(run / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        results = json.loads((run / row["job"] / "results.json").read_text())
        row.update(
            {
                k: results.get(k)
                for k in ["mean_psnr", "mean_ssim", "mean_utility", "mean_top1_agreement"]
            }
        )
        row.update(column=layer, folder=str(run / row["job"]), stand_in=bool(extra))
        row["defence_aware"] = row["defence_aware"] == "True"
        row["top1_kept"] = sum(
            bool(i.get("semantic", {}).get("top1_agreement")) for i in results["images"]
        )
        row["images"] = len(results["images"])
    return rows


def best(rows: list[dict], key: str) -> dict:
    return max(rows, key=lambda r: (r.get(key) is not None, r.get(key) or 0))


def goals(rows: list[dict]) -> list[str]:
    """The audit's goals, measured: the strongest attack, what knowing is worth, the utility's
    and leakage's order over noise, and the cheapest defence that protects most."""
    lines = []
    attacked = [r for r in rows if not r["stand_in"]]
    for layer in dict.fromkeys(r["column"] for r in attacked):
        at = [r for r in attacked if r["column"] == layer]
        points = list(
            dict.fromkeys((r["defence"], r["defence_aware"]) for r in at if r["defence"] != "none")
        )
        points = [("none", True), *points]
        met = {"mean_psnr": 0, "mean_top1_agreement": 0}
        misses = []
        for defence, aware in points:
            cell = [
                r
                for r in at
                if r["defence"] == defence and (defence == "none" or r["defence_aware"] == aware)
            ]
            slp = [r for r in cell if r["method"] == "slp"]
            others = [r for r in cell if r["method"] != "slp"]
            if not slp or not others:
                continue
            for key in met:
                if (slp[0].get(key) or 0) >= (best(others, key).get(key) or 0) - 1e-9:
                    met[key] += 1
                else:
                    misses.append(f"{defence}{'' if defence == 'none' else (' aware' if aware else ' unaware')} "
                                  f"{key[5:]}: slp {slp[0][key]:.3g}, {best(others, key)['method']} "
                                  f"{best(others, key)[key]:.3g}")  # fmt: skip
        count = len(points)
        lines.append(f"{layer}: slp leaks at least as much as the best baseline at {met['mean_psnr']} of {count} "
                     f"points in PSNR, {met['mean_top1_agreement']} of {count} in top-1 agreement"
                     + (f"; not at: {'; '.join(misses)}" if misses else ""))  # fmt: skip
        for defence in ("quantise:2", "topk:0.1"):
            pair = {
                r["defence_aware"]: r
                for r in at
                if r["defence"] == defence and r["method"] == "slp"
            }
            if len(pair) == 2:
                gain, kept = (
                    pair[True]["mean_psnr"] - pair[False]["mean_psnr"],
                    pair[True]["top1_kept"] - pair[False]["top1_kept"],
                )
                verdict = "met" if gain >= 1 or kept >= 1 else "NOT met"
                lines.append(
                    f"{layer} {defence}: knowing it gives slp {gain:+.2f} dB and {kept:+d} images "
                    f"kept ({verdict}: ≥ 1 dB or ≥ 1 image)"
                )
        utility = {r["defence"]: r["mean_utility"] for r in at}
        lines.append(
            f"{layer}: utility at none {100 * utility.get('none', float('nan')):.0f} % (goal: exactly 100)"
        )
        noise = sorted((float(d.split(":")[1]), d) for d in utility if d.startswith("noise:"))
        order = [utility[d] for _, d in noise]
        leak = [
            best([r for r in at if r["defence"] == d], "mean_psnr")["mean_psnr"] for _, d in noise
        ]
        falls = [all(a >= b for a, b in zip(v, v[1:])) for v in (order, leak)]
        lines.append(f"{layer}: over {', '.join(d for _, d in noise)} utility {[round(100 * u) for u in order]} %, "
                     f"best attack's PSNR {[round(x, 1) for x in leak]} dB "
                     f"(non-increasing: {falls[0]}, {falls[1]})")  # fmt: skip
        costs = {d: u for d, u in utility.items() if d != "none" and u is not None}
        cheap = [d for d, u in costs.items() if u >= utility["none"] - CHEAP / 100]
        # With none that cheap, ask it of the defences that keep the most utility.
        gentlest = [d for d, u in costs.items() if u == max(costs.values())]
        if costs:
            protect = {
                d: best([r for r in at if r["defence"] == d], "mean_psnr")
                for d in cheap or gentlest
            }
            d, r = min(protect.items(), key=lambda item: item[1]["mean_psnr"])
            knowing = " aware" if r["defence_aware"] else " unaware"
            head = (f"of the defences costing ≤ {CHEAP} points of utility ({', '.join(cheap)}), {d} protects most"
                    if cheap else f"no defence costs ≤ {CHEAP} points of utility; of the cheapest "
                    f"({', '.join(gentlest)}: {100 * costs[d]:.0f} %), {d} protects most")  # fmt: skip
            lines.append(f"{layer}: {head}: the best attack ({r['method']}{knowing}) still gets "
                         f"{r['mean_psnr']:.1f} dB and {r['top1_kept']} of {r['images']} images kept")  # fmt: skip
    stand = [r for r in rows if r["stand_in"]]
    for r in stand:
        own = next((o for o in attacked if o["column"] == r["column"] and o["method"] == r["method"]
                    and o["defence"] == r["defence"] and o["defence_aware"] == r["defence_aware"]), None)  # fmt: skip
        if own is not None:
            lines.append(f"{r['column']} {r['method']} {r['defence']}{' aware' if r['defence_aware'] else ''}: "
                         f"a random-weights stand-in {r['mean_psnr']:.1f} dB, {r['top1_kept']} kept; the victim's "
                         f"weights {own['mean_psnr']:.1f} dB, {own['top1_kept']} kept")  # fmt: skip
    return lines


def sheet(
    rows: list[dict], layer: str, photo: Path, size: int, out: Path,
    defences: list[str] | None = None, attacks: list[str] | None = None, suffix: str = "",
) -> Path:  # fmt: skip
    """A row per defence, a column per attack (all of them unless named): the reconstructions of
    one photograph."""
    at = [r for r in rows if r["column"] == layer and not r["stand_in"]]
    present = list(dict.fromkeys(privacy_utility.attack(r) for r in at if r["defence"] != "none"))
    attacks = [a for a in attacks or present if a in present]
    found = list(dict.fromkeys(r["defence"] for r in at))
    defences = [d for d in defences or found if d in found]
    label, header = 96, 16
    image = Image.new(
        "RGB", (label + size * (1 + len(attacks)), header + size * len(defences)), "white"
    )
    draw = ImageDraw.Draw(image)
    for column, title in enumerate(["photograph", *attacks]):
        draw.text((label + column * size + 3, 2), title, fill="black")
    for row, defence in enumerate(defences):
        utility = next(r["mean_utility"] for r in at if r["defence"] == defence)
        draw.text(
            (3, header + row * size + 3), f"{defence}\nutility {100 * utility:.0f} %", fill="black"
        )
        image.paste(target_tile(photo, size), (label, header + row * size))
        for column, name in enumerate(attacks, start=1):
            cell = next((r for r in at if r["defence"] == defence and (privacy_utility.attack(r) == name or
                         (defence == "none" and name.split()[0] == r["method"]))), None)  # fmt: skip
            if cell is not None:
                tile = Image.open(Path(cell["folder"]) / "reconstructions" / photo.name).convert(
                    "RGB"
                )
                image.paste(tile.resize((size, size)), (label + column * size, header + row * size))
    path = out / f"audit_{layer}_{photo.stem}{suffix}.jpg"
    image.save(path, quality=88)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4 photographs, 64 px, 60 steps, features.6, 3 defences",
    )
    parser.add_argument("--set", choices=sorted(SETS), default="validation")
    parser.add_argument("--layers", nargs="+", default=["features.6", "features.10"])
    parser.add_argument("--methods", nargs="+", default=["slp", "pixel", "tv", "fft"])
    parser.add_argument("--defences", nargs="+", default=DEFENCES)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--stand-in", action="store_true", help="slp and pixel through a random MobileNetV2 too"
    )
    parser.add_argument(
        "--stand-in-defences", nargs="+", default=None, help="the stand-in's defences (all if not)"
    )
    parser.add_argument("--parallel", type=int, default=1, help="sweeps at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per sweep")
    parser.add_argument("--photos", type=int, default=None, help="only the first N photographs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.size, args.steps, args.photos = 64, 60, 4
        args.layers, args.methods, args.defences = (
            ["features.6"],
            ["slp", "pixel"],
            ["none", "quantise:2", "topk:0.1"],
        )
    with tempfile.TemporaryDirectory() as scratch:
        folder, pngs = first_photos(args.set, args.photos, Path(scratch))
        root = args.out or Path(scratch) / "runs"
        root.mkdir(parents=True, exist_ok=True)
        pieces = [(layer, method, []) for layer in args.layers for method in args.methods]
        if args.stand_in:
            defences = args.stand_in_defences or args.defences
            stand_in = [
                "--model.attacker_weights=random",
                f"--sweep.defences=[{', '.join(defences)}]",
            ]
            pieces += [(args.layers[0], m, stand_in) for m in ("slp", "pixel")]
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            rows = [
                r for rs in pool.map(lambda p: sweep(args, folder, *p, root), pieces) for r in rs
            ]
        print(
            f"MobileNetV2, {args.set} set ({len(pngs)} photographs), {args.size} px, {args.steps} steps\n"
        )
        print("\n".join(privacy_utility.table([r for r in rows if not r["stand_in"]])))
        print("\n".join(goals(rows)))
        if args.out:
            (args.out / "audit_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            for layer in args.layers:
                plot = privacy_utility.plot([r for r in rows if r["column"] == layer and not r["stand_in"]],
                                            args.out / f"audit_privacy_utility_{layer}.png")  # fmt: skip
                print(f"plot: {plot}")
                for photo in pngs[:2]:
                    print(f"sheet: {sheet(rows, layer, photo, args.size, args.out)}")
                summary = sheet(rows, layer, pngs[0], args.size, args.out, SUMMARY_DEFENCES,
                                SUMMARY_ATTACKS, suffix="_summary")  # fmt: skip
                print(f"sheet: {summary}")


if __name__ == "__main__":
    main()
