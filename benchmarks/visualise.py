"""Feature visualisation's measurement: class visualisations of ImageNet MobileNetV2 by the
switched pyramid against Lucid's recipe (fft with its transforms), pixel descent and Lucid's
joint Laplacian pyramid, judged by an independent classifier; and channel atlases.

    python benchmarks/visualise.py --quick                    # 2 classes, 64 px, 64 steps: a minute
    python benchmarks/visualise.py --out benchmarks/results/vis --sizes 128 --budgets 256 512

Classes: ``TUNING`` (what settings were chosen on) and ``VALIDATION`` (20 others, what is
reported), each visualised once per seed (``--seeds``) in one batch per method, read at the
logits (``--model.layer classifier``). Per cell: the share of visualisations the independent
classifier (EfficientNet-Lite0) puts the intended class first (top-1) and among its five (top-5),
the same by MobileNetV2 itself, the logit reached, and the slope of the power spectrum (natural
photographs: about −2). With ``--out``, ``visualise_<set>.jpg`` shows six classes by each
method at the largest budget, and ``visualise_<set>_slp_misses_<steps>.jpg`` every row slp's
visualisation does not transfer (top-5), beside the others' same row. ``--atlas`` adds 32-channel
atlases of two layers (slp against fft): each unit's activation and its share of the best natural
photograph's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slp_lightning.networks import build_feature_network  # noqa: E402
from slp_lightning.outputs.files import caption_font  # noqa: E402

# ImageNet classes: tuning (settings chosen here) and validation (reported).
TUNING = [9, 130, 309, 417, 949]  # ostrich, flamingo, bee, balloon, strawberry
VALIDATION = [
    1,
    22,
    76,
    99,
    207,
    254,
    291,
    323,
    340,
    388,
    430,
    471,
    508,
    547,
    609,
    671,
    779,
    817,
    945,
    980,
]
LUCID = ["--model.transforms=lucid"]
# What each method runs with: Lucid's recipe is fft with its transforms (Adam 0.05, its defaults).
METHODS = {
    "slp": ["--model.method=slp", "--model.pyramid_levels=4", "--model.compactness=0", *LUCID],
    "slp_fft": [
        "--model.method=slp_fft",
        "--model.pyramid_levels=6",
        "--model.compactness=0",
        "--model.init_noise=0.01",
        "--model.optimizer=torch.optim.Adam",
        "--model.optimizer.lr=0.05",
        "--model.optimizer.eps=1e-3",
        *LUCID,
    ],
    "fft (Lucid)": ["--model.method=fft", "--model.init_noise=0.01", *LUCID],
    "pixel": ["--model.method=pixel", *LUCID],
    "joint_pyramid": ["--model.method=joint_pyramid", "--model.pyramid_levels=4", *LUCID],
}
ATLAS_LAYERS = ["features.6", "features.10"]


def visualise(
    args: argparse.Namespace, method: str, classes: list[int], size: int, steps: int, root: Path
) -> Path:
    """One run: every class once per seed, in one batch; its run folder."""
    out = root / f"{method.split()[0]}_{size}_{steps}"
    specs = ", ".join(f"class:{c}" for c in classes)
    command = [
        sys.executable, "-m", "slp_lightning", "fit", "--config", "configs/mobilenet_v2.yaml",
        "--model.layer=classifier", f"--model.objective=[{specs}]", f"--data.seeds={args.seeds}",
        f"--model.image_size={size}", f"--trainer.max_steps={steps}", "--model.band_lr=1",
        f"--trainer.default_root_dir={out}", "--trainer.enable_progress_bar=false",
        "--checkpoint.every_n_train_steps=100000", *METHODS[method], *args.extra,
    ]  # fmt: skip
    env = {**os.environ, "SLP_LIGHTNING_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    return max(out.glob("*/version_*"), key=lambda p: p.stat().st_mtime)


def spectrum_slope(png: Path) -> float:
    """The slope of log power against log frequency of the image's grey levels (radially)."""
    grey = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
    h, w = grey.shape
    y, x = np.indices(power.shape)
    radius = np.hypot(y - h // 2, x - w // 2).astype(int)
    counts = np.bincount(radius.ravel())
    mean = np.bincount(radius.ravel(), power.ravel()) / np.maximum(counts, 1)
    f = np.arange(1, min(h, w) // 2)
    return float(np.polyfit(np.log(f), np.log(mean[f] + 1e-12), 1)[0])


@torch.no_grad()
def self_judged(run: Path) -> list[int]:
    """MobileNetV2's own top-1 class of each visualisation (from its PNG)."""
    network = build_feature_network("torchvision", "classifier", "auto", arch="mobilenet_v2")
    results = json.loads((run / "results.json").read_text())
    pixels = [
        np.asarray(Image.open(run / row["png"]).convert("RGB"), dtype=np.float32) / 255
        for row in results["images"]
    ]
    images = torch.stack([torch.from_numpy(p).permute(2, 0, 1) for p in pixels])
    return network(images).argmax(dim=1).tolist()


def cell(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    rows = results["images"]
    intended = [int(r["objective"].split(":")[1]) for r in rows]
    own = self_judged(run)
    return {
        "top1": results.get("mean_transfer_top1"), "top5": results.get("mean_transfer_top5"),
        "self_top1": sum(o == i for o, i in zip(own, intended)) / len(rows),
        "logit": statistics.mean(r["activation"] for r in rows),
        "slope": statistics.mean(spectrum_slope(run / r["png"]) for r in rows),
        "rows": len(rows), "run": str(run),
    }  # fmt: skip


def figure(runs: dict[str, Path], names: list[str], out: Path, tile: int = 128) -> Path:
    """A row per named visualisation (a row ``name`` of results.json: ``class_K`` or
    ``class_K_seedS``), a column per method: each picture, captioned with what EfficientNet-Lite0
    calls it (✓: the intended class)."""
    from torchvision.models import MobileNet_V2_Weights

    classes, font = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"], caption_font(11)
    label, header, caption = 110, 16, 14
    image = Image.new(
        "RGB",
        (label + tile * len(runs), header + (tile + caption) * len(names)),
        "white",
    )
    draw = ImageDraw.Draw(image)
    for column, (method, run) in enumerate(runs.items()):
        draw.text((label + column * tile + 3, 2), method, fill="black", font=font)
        rows = json.loads((run / "results.json").read_text())["images"]
        for index, name in enumerate(names):
            row = next(r for r in rows if r["name"] == name)
            semantic = row.get("semantic") or {}
            top = semantic.get("top1", {})
            y = header + index * (tile + caption)
            if column == 0:
                seed = name.partition("_seed")[2]  # absent with one seed
                title = classes[int(row["objective"].split(":")[1])][:17]
                title += f" (seed {seed})" if seed not in ("", "0") else ""
                draw.text((3, y + tile // 2), title, fill="black", font=font)
            picture = Image.open(run / row["png"]).convert("RGB").resize((tile, tile))
            image.paste(picture, (label + column * tile, y))
            mark = " ✓" if semantic.get("intended_top1") else ""
            draw.text(
                (label + column * tile + 2, y + tile),
                f"{top.get('name', '?')[:18]}{mark}",
                fill="black",
                font=font,
            )
    image.save(out, quality=88)
    return out


def atlas(args: argparse.Namespace, method: str, layer: str, root: Path) -> dict:
    out = root / f"atlas_{method.split()[0]}_{layer}"
    start = time.perf_counter()
    command = [
        sys.executable, "-m", "slp_lightning", "fit", "--config", "configs/mobilenet_v2.yaml",
        f"--model.layer={layer}", "--model.objective=channel:0", "--sweep.channels=0-31",
        f"--model.image_size={args.sizes[0]}", f"--trainer.max_steps={args.budgets[0]}", "--model.band_lr=1",
        f"--trainer.default_root_dir={out}", "--trainer.enable_progress_bar=false",
        "--checkpoint.every_n_train_steps=100000", f"--sweep.methods=[{method.split()[0]}]", *METHODS[method][1:],
    ]  # fmt: skip
    env = {**os.environ, "SLP_LIGHTNING_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    job = next(p for p in out.glob("*/version_*/*") if (p / "results.json").exists())
    rows = json.loads((job / "results.json").read_text())["images"]
    return {
        "median_activation": statistics.median(r["activation"] for r in rows),
        "median_share": statistics.median(r["natural_share"] for r in rows if r["natural_share"] is not None),
        "seconds": time.perf_counter() - start, "sheet": str(job / "sheet.png"),
    }  # fmt: skip


def figures(
    args: argparse.Namespace, runs: dict[tuple[int, str], Path], classes: list[int]
) -> None:
    """Six classes at the largest budget (of the last size), every method side by side; then,
    per budget, every row of slp's that Lite0 does not put in its top five, beside the other
    methods' same row."""
    at = {steps: {m: r for (b, m), r in runs.items() if b == steps} for steps in args.budgets}
    first = json.loads((next(iter(at[args.budgets[-1]].values())) / "results.json").read_text())
    shown = [
        next(r["name"] for r in first["images"] if r["objective"] == f"class:{c}")
        for c in classes[:6]
    ]
    print(
        f"\nfigure: {figure(at[args.budgets[-1]], shown, args.out / f'visualise_{args.set}.jpg')}"
    )
    for steps, methods in at.items():
        if "slp" not in methods:
            continue
        rows = json.loads((methods["slp"] / "results.json").read_text())["images"]
        misses = [r["name"] for r in rows if not (r.get("semantic") or {}).get("intended_top5")]
        if misses:
            out = args.out / f"visualise_{args.set}_slp_misses_{steps}.jpg"
            print(
                f"slp's rows outside Lite0's top five at {steps} steps: {figure(methods, misses, out)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 classes, 64 px, 64 steps")
    parser.add_argument("--set", choices=["tuning", "validation"], default="validation")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[128])
    parser.add_argument("--budgets", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--atlas", action="store_true", help="also 32-channel atlases (slp, fft)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="more fit options after --")
    args = parser.parse_args()
    classes = TUNING if args.set == "tuning" else VALIDATION
    if args.quick:
        classes, args.sizes, args.budgets, args.seeds = classes[:2], [64], [64], 1
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        judges = "judged by EfficientNet-Lite0 and itself"
        print(f"MobileNetV2, {args.set} classes ({len(classes)} × {args.seeds} seeds), {judges}\n")
        print(
            "| size | steps | method | top-1 (Lite0) | top-5 (Lite0) | top-1 (MobileNetV2) | logit | spectrum slope |"
        )
        print("|---|---|---|---|---|---|---|---|")
        rows, runs = [], {}
        for size in args.sizes:
            for steps in args.budgets:
                for method in args.methods:
                    runs[steps, method] = visualise(args, method, classes, size, steps, root)
                    result = cell(runs[steps, method])
                    rows.append({"size": size, "steps": steps, "method": method, **result})
                    shares = [f"{100 * result[k]:.0f} %" for k in ("top1", "top5", "self_top1")]
                    print(f"| {size} | {steps} | {method} | {' | '.join(shares)} | {result['logit']:.1f} | "
                          f"{result['slope']:.2f} |", flush=True)  # fmt: skip
        if args.atlas:
            print(
                "\n| layer | method | median activation | median share of the best natural photograph's | seconds |"
            )
            print("|---|---|---|---|---|")
            for layer in ATLAS_LAYERS:
                for method in ("slp", "fft (Lucid)"):
                    a = atlas(args, method, layer, root)
                    rows.append({"atlas": layer, "method": method, **a})
                    share = f"{100 * a['median_share']:.0f} %"
                    print(
                        f"| {layer} | {method} | {a['median_activation']:.3g} | {share} | {a['seconds']:.0f} |"
                    )
        if args.out:
            figures(args, runs, classes)
            (args.out / "visualise_rows.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows)
            )


if __name__ == "__main__":
    main()
