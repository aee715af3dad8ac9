"""The tool's own cost per step against Lightning's floor and a plain loop, at a size where the
network costs almost nothing (AlexNet conv1, 64 px, one image, one thread): milliseconds per
step from the difference of a long and a short run, best of three, every loop in one process
(``python benchmarks/overhead.py --floor``); and the tensor operations each step calls from
Python, counted the same way: on a GPU each is a kernel launch."""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader

from slp_lightning import FeatureInversion
from slp_lightning.data.targets import _Clock
from slp_lightning.networks import build_feature_network

SIZE, SHORT, LONG, REPEATS = 64, 50, 550, 3  # ms/step from (LONG - SHORT) steps
QUIET = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def _problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    network = build_feature_network("alexnet", "conv1", "random")
    images = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = network(images)
    return network, images, target


def plain_loop(steps: int) -> None:
    """sigmoid, network, norm, Adam: the inversion's maths and nothing else."""
    network, _, target = _problem()
    I_pre = torch.nn.Parameter(torch.randn(1, 3, SIZE, SIZE) * 0.1)
    optimizer = torch.optim.Adam([I_pre], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        (network(torch.sigmoid(I_pre)) - target).flatten(1).norm(dim=1).sum().backward()
        optimizer.step()


class Minimal(pl.LightningModule):
    """The plain loop as the smallest LightningModule: Lightning's own floor."""

    def __init__(self) -> None:
        super().__init__()
        self.network, _, target = _problem()
        self.register_buffer("target", target)
        self.I_pre = torch.nn.Parameter(torch.randn(1, 3, SIZE, SIZE) * 0.1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return (self.network(torch.sigmoid(self.I_pre)) - self.target).flatten(1).norm(dim=1).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.I_pre], lr=0.05)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Clock(self.trainer.max_steps), batch_size=None)


def minimal_module(steps: int) -> None:
    pl.Trainer(max_steps=steps, **QUIET).fit(Minimal())


def inversion(method: str, **settings: object) -> Callable[[int], None]:
    """A ``FeatureInversion`` run of ``method`` through a plain Trainer (its PyramidSwitch added by
    the module), no logger, no progress bar, no checkpoints."""

    def run(steps: int) -> None:
        model = FeatureInversion(method=method, layer="conv1", weights="random", image_size=SIZE,
                                 pyramid_levels=3, **settings)  # fmt: skip
        _, images, _ = _problem()
        model.set_targets(images, ["x"])
        data = pl.LightningDataModule.from_datasets(train_dataset=_Clock(steps), batch_size=None)
        pl.Trainer(max_steps=steps, **QUIET).fit(model, datamodule=data)

    return run


def per_step(run: Callable[[int], None]) -> float:
    """Milliseconds per step: (a LONG run − a SHORT run) / their difference, best of REPEATS."""
    times = []
    for _ in range(REPEATS):
        lengths = {}
        for steps in (SHORT, LONG):
            start = time.perf_counter()
            run(steps)
            lengths[steps] = time.perf_counter() - start
        times.append((lengths[LONG] - lengths[SHORT]) / (LONG - SHORT))
    return 1e3 * min(times)


class _Counter(TorchFunctionMode):
    """Counts the tensor operations called from Python while it is entered."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(run: Callable[[int], None]) -> float:
    """Tensor operations per step: (those of a LONG run − a SHORT run) / their difference."""
    counts = {}
    for steps in (SHORT, LONG):
        with _Counter() as counter:
            run(steps)
        counts[steps] = counter.count
    return (counts[LONG] - counts[SHORT]) / (LONG - SHORT)


def floor_table(rows: dict[str, Callable[[int], None]] | None = None) -> str:
    torch.set_num_threads(1)
    rows = rows or {
        "a plain PyTorch loop (sigmoid, network, norm, Adam)": plain_loop,
        "a minimal LightningModule doing the same, plain `Trainer`, no logger": minimal_module,
        "`FeatureInversion`, method `pixel`, no logger, no progress bar": inversion("pixel"),
        "`FeatureInversion`, method `slp`": inversion("slp"),
        "`FeatureInversion`, method `pixel`, 10 steps per call": inversion(
            "pixel", steps_per_call=10
        ),
        "`FeatureInversion`, method `slp`, 10 steps per call": inversion("slp", steps_per_call=10),
    }
    measured = {name: per_step(run) for name, run in rows.items()}
    floor = measured["a minimal LightningModule doing the same, plain `Trainer`, no logger"]
    plain = measured["a plain PyTorch loop (sigmoid, network, norm, Adam)"]
    ops = {name: ops_per_step(run) for name, run in rows.items()}
    lines = [
        "| loop | ms / step | / Lightning's floor | / the plain loop | tensor ops / step |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {ms:.2f} | {ms / floor:.2f} | {ms / plain:.2f} | {ops[name]:.0f} |"
        for name, ms in measured.items()
    ]
    return "\n".join(lines)
