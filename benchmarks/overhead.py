"""Framework costs, measured as ratios in one run on one machine (issue: scale and speed).

    python benchmarks/overhead.py --quick     # < 2 minutes on 2 CPU cores

1. framework: a step of ``Trainer.fit`` with the default callbacks / a raw PyTorch loop doing the
   same math (same network, images, optimiser), AlexNet conv5, 224 px, batch 8.
2. pyramid: a step with the switched pyramid (K = 6) / a step without (K = 1, plain pixels), in
   the coarsest phase (5 reductions and expansions) and in the final phase (all levels on).
3. batching: one run of 8 targets / eight one-image runs (whole runs, set-up included).
4. memory: peak RSS of a 32-image conv5 run and of a 1-image run (separate processes).
5. hook: a step reading torchvision MobileNetV2's ``features.6`` with a forward hook / a step
   reading the same layer (``features.6.add``) from the cut FX graph, 128 px, batch 8
   (``--only hook`` runs this row alone).
6. curves: a whole run with the quality curves at the default cadence (every 100 steps, at every
   switch and at the end) / the same run without them, AlexNet conv5, 224 px, batch 8, 300 steps
   (``--only curves``).
7. defence: a whole run of a leakage audit (MobileNetV2 features.6 quantised to 2 bits, the
   attacker calibrated on its own photographs, the task's utility measured) / the same run
   undefended, 128 px, batch 8, 300 steps (``--only defence``).
8. compile: a step with ``torch.compile`` of the network / eager, AlexNet conv5, 128 px, batch 8,
   and after how many steps its compilation pays (``--only compile``).
``--floor`` prints only the tool's own cost per step against Lightning's floor (a minimal
LightningModule) and a plain PyTorch loop, at tiny compute (``benchmarks/floor.py``).
Step times are medians over the steps after a warm-up; configurations are interleaved so that
load on the shared machine hits both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SLP_LIGHTNING_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.floor

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

from slp_lightning import FeatureInversion, InversionCheckpoint, OutputWriter, PyramidSwitch  # noqa: E402
from slp_lightning.data.targets import TargetImages  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "coins", "horse"]
WARMUP = 3


def targets(count: int, names: list[str] = PHOTOS) -> str:
    """A folder of ``count`` photographs (scikit-image's ``names``, repeated when needed)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="bench_photos_"))
    for i in range(count):
        name = names[i % len(names)]
        Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB").save(
            folder / f"{i:04d}_{name}.png"
        )
    return str(folder)


class StepTimer(Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args) -> None:  # noqa: ANN002
        self.stamps.append(time.perf_counter())


def median_step(stamps: list[float]) -> float:
    steps = [b - a for a, b in zip(stamps[WARMUP:], stamps[WARMUP + 1 :])]
    return statistics.median(steps)


def fit_run(
    images: str, steps: int, levels: int = 6, timer: StepTimer | None = None, curves: bool = True,
    **settings: object,
) -> float:  # fmt: skip
    """Wall time of a whole default-callback ``fit`` run (AlexNet conv5 at 224 px unless
    ``settings`` say otherwise)."""
    start = time.perf_counter()
    root = tempfile.mkdtemp(prefix="bench_run_")
    writer = OutputWriter()
    if not curves:
        writer._log_curves = lambda *_: None  # noqa: SLF001 - the same run without its curves
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[PyramidSwitch(), writer, InversionCheckpoint(every_n_train_steps=100, save_last=True),
                   *([timer] if timer else [])],
        logger=TensorBoardLogger(root, name="bench"),
        log_every_n_steps=50,
        enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    settings = {"layer": "conv5", "weights": "random", "compactness": 0.01, **settings}
    model = FeatureInversion(pyramid_levels=levels, **settings)
    trainer.fit(model, TargetImages(images, image_size=model.image_size))
    return time.perf_counter() - start


def raw_loop(
    images: str, steps: int, levels: int = 6, finest_on: int | None = None, **settings: object
) -> list[float]:
    """The same math with no Trainer (at level ``finest_on``, default the coarsest; AlexNet conv5
    unless ``settings`` say otherwise): returns the time stamps after each step."""
    settings = {"layer": "conv5", "weights": "random", "compactness": 0.01, **settings}
    model = FeatureInversion(pyramid_levels=levels, **settings)
    data = TargetImages(images, image_size=model.image_size)
    data.setup("fit")
    model.set_targets(data.targets, data.names)
    model.schedule.finest_on.fill_(finest_on or levels)
    optimizer = model.configure_optimizers()
    stamps = []
    for _ in range(steps):
        optimizer.zero_grad()
        model.inversion.losses(model.schedule.finest_on)[2].sum().backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return stamps


def peak_rss_mb(images: int, steps: int) -> float:
    code = (
        "import sys; sys.argv=['x']; from benchmarks.overhead import fit_run, targets; "
        f"fit_run(targets({images}), {steps}); import resource; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps (under 2 minutes on 2 cores)"
    )
    parser.add_argument(
        "--only", choices=["hook", "curves", "defence", "compile"], help="one row alone"
    )
    parser.add_argument(
        "--floor", action="store_true",
        help="only the tool's cost per step against Lightning's floor and a plain loop (benchmarks/floor.py)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.floor:
        from benchmarks.floor import floor_table

        print(floor_table())
        return
    steps = 12 if args.quick else 40
    torch.set_num_threads(torch.get_num_threads())
    eight = targets(8)
    print("| measure | value | target |\n|---|---|---|")
    rows = {"hook": lambda: hook_row(eight, steps), "curves": lambda: curves_row(eight, 60 if args.quick else 300),
            "defence": lambda: defence_row(eight, 60 if args.quick else 300),
            "compile": lambda: compile_row(eight, steps)}  # fmt: skip
    for name, row in rows.items():
        if args.only in (None, name):
            row()
    if args.only:
        return

    fit_steps, raw_steps = [], []
    for _ in range(2):  # interleaved
        timer = StepTimer()
        fit_run(eight, steps, timer=timer)
        fit_steps.append(median_step(timer.stamps))
        raw_steps.append(median_step(raw_loop(eight, steps)))
    framework = min(fit_steps) / min(raw_steps)

    coarse_steps, fine_steps, pixel_steps = [], [], []
    for _ in range(2):
        coarse_steps.append(median_step(raw_loop(eight, steps, levels=6)))
        fine_steps.append(median_step(raw_loop(eight, steps, levels=6, finest_on=1)))
        pixel_steps.append(median_step(raw_loop(eight, steps, levels=1)))
    coarse, fine = min(coarse_steps) / min(pixel_steps), min(fine_steps) / min(pixel_steps)

    batch_steps = steps
    batched = fit_run(eight, batch_steps)
    singles = sum(fit_run(targets(1), batch_steps) for _ in range(8))
    batching = batched / singles

    rss_32, rss_1 = peak_rss_mb(32, 3), peak_rss_mb(1, 3)
    network = FeatureInversion(layer="conv5", weights="random").network
    weights_mb = sum(p.numel() * 4 for p in network.parameters()) / 2**20

    print(
        f"| framework: fit step / raw loop step (conv5, 224, batch 8) | {framework:.3f} "
        f"({min(fit_steps) * 1e3:.0f} ms / {min(raw_steps) * 1e3:.0f} ms) | ≤ 1.10 |"
    )
    print(
        f"| pyramid, coarsest phase: K=6 step at level 6 / pixel step (batch 8) | {coarse:.3f} "
        f"({min(coarse_steps) * 1e3:.0f} ms / {min(pixel_steps) * 1e3:.0f} ms) | ≤ 1.05 |"
    )
    print(
        f"| pyramid, final phase: K=6 step at level 1 / pixel step (batch 8) | {fine:.3f} "
        f"({min(fine_steps) * 1e3:.0f} ms / {min(pixel_steps) * 1e3:.0f} ms) | ≤ 1.05 |"
    )
    print(
        f"| batching: one 8-image run / eight 1-image runs ({batch_steps} steps) | {batching:.3f} "
        f"({batched:.1f} s / {singles:.1f} s) | ≤ 0.5 |"
    )
    print(
        f"| memory: peak RSS, 32 images / 1 image (conv5, 224, 3 steps) | {rss_32:.0f} MB / {rss_1:.0f} MB "
        f"(+{(rss_32 - rss_1) / 31:.1f} MB per image; network weights {weights_mb:.1f} MB, held once) | report |"
    )


def defence_row(images: str, steps: int) -> None:
    """Row 7: a run whose features are quantised to 2 bits, attacked knowing it (calibrated on
    the attacker's photographs), its task's utility measured / the same run undefended."""
    mobilenet = {"network": "torchvision", "arch": "mobilenet_v2", "layer": "features.6", "weights": "auto",
                 "image_size": 128, "compactness": 0.0}  # fmt: skip
    defended, plain = [], []
    for _ in range(2):
        defended.append(fit_run(images, steps, levels=4, defence="quantise:2", **mobilenet))
        plain.append(fit_run(images, steps, levels=4, **mobilenet))
    print(
        f"| defence: a {steps}-step run, quantise:2 known to the attacker and the utility measured / "
        f"undefended (MobileNetV2 features.6, 128 px, batch 8) | {min(defended) / min(plain):.3f} "
        f"({min(defended):.1f} s / {min(plain):.1f} s) | ≤ 1.05 |"
    )


def compile_row(images: str, steps: int) -> None:
    """Row 8: ``torch.compile`` of the network (AlexNet conv5, 128 px, batch 8): a step eager /
    compiled, the compilation's own seconds, and the steps after which it pays."""
    per_step, first = {}, {}
    for compiled in (False, True):
        model = FeatureInversion(
            layer="conv5", weights="random", pyramid_levels=6, compactness=0.01, image_size=128
        )
        data = TargetImages(images, image_size=128)
        data.setup("fit")
        model.set_targets(data.targets, data.names)
        if compiled:
            model.inversion.network = torch.compile(model.inversion.network)
        optimizer = model.configure_optimizers()
        stamps = [time.perf_counter()]
        for _ in range(steps):
            optimizer.zero_grad()
            model.inversion.losses(model.schedule.finest_on)[2].sum().backward()
            optimizer.step()
            stamps.append(time.perf_counter())
        per_step[compiled], first[compiled] = median_step(stamps), stamps[1] - stamps[0]
    saved = per_step[False] - per_step[True]
    pays = f"after {(first[True] - first[False]) / saved:.0f} steps" if saved > 0 else "never"
    print(
        f"| torch.compile: a step eager / compiled (AlexNet conv5, 128 px, batch 8) | "
        f"{per_step[False] / per_step[True]:.2f} ({per_step[False] * 1e3:.0f} ms / {per_step[True] * 1e3:.0f} ms; "
        f"compiling {first[True] - first[False]:.0f} s, pays {pays}) | report |"
    )


def curves_row(images: str, steps: int) -> None:
    """Row 6: whole runs with and without the quality curves, interleaved."""
    with_curves, without = [], []
    for _ in range(2):
        with_curves.append(fit_run(images, steps))
        without.append(fit_run(images, steps, curves=False))
    print(
        f"| curves: a {steps}-step run with the quality curves at the default cadence / without "
        f"(conv5, 224, batch 8) | {min(with_curves) / min(without):.3f} ({min(with_curves):.1f} s / "
        f"{min(without):.1f} s) | ≤ 1.05 |"
    )


def hook_row(images: str, steps: int) -> None:
    """Row 5: the same layer read by a hook and from the cut FX graph, interleaved."""
    mobilenet = {
        "network": "torchvision",
        "arch": "mobilenet_v2",
        "image_size": 128,
        "compactness": 0.0,
    }
    hooked, graph = [], []
    for _ in range(3):
        hooked.append(
            median_step(
                raw_loop(images, steps, levels=4, finest_on=1, layer="features.6", **mobilenet)
            )
        )
        graph.append(
            median_step(
                raw_loop(images, steps, levels=4, finest_on=1, layer="features.6.add", **mobilenet)
            )
        )
    print(
        f"| hook: MobileNetV2 features.6 by a forward hook / features.6.add from the FX graph (128 px, "
        f"batch 8) | {min(hooked) / min(graph):.3f} ({min(hooked) * 1e3:.0f} ms / {min(graph) * 1e3:.0f} ms) "
        f"| ≤ 1.05 |"
    )


if __name__ == "__main__":
    main()
