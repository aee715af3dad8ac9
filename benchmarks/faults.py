"""Fault injection: stop runs with SIGINT, SIGTERM or SIGKILL after a given step, resume them, and
compare with the uninterrupted run (issue: reliability).

    python benchmarks/faults.py            # quick: 3 kill points x 3 signals, the tests' tiny run
    python benchmarks/faults.py --full     # a kill point every 4 steps of the 60-step run

A run is stopped after step k exactly: ``PauseAt`` holds it at the start of step k + 1 (every save
of step k done) until the signal comes. SIGINT and SIGTERM save on the way out (SIGTERM at the
end of step k + 1, Lightning's next step boundary); SIGKILL saves nothing, so the resumed run
repeats the steps since ``last.ckpt``'s last refresh. Each row: the step the run stopped at, the
step ``last.ckpt`` resumed from, the steps lost (repeated) and max |ΔI_pre| of the resumed run's
end against the uninterrupted run's. ``tests/test_faults.py`` runs a few of these.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from slp_lightning.cli.commands import main as cli  # noqa: E402

from helpers import PHOTOS, launch, tiny_args  # noqa: E402  (the tests' tiny run and launcher)

PAUSE_LIMIT_S = 120  # a signal that never comes must not leave a run hanging
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -signal.SIGKILL}


class PauseAt(Callback):
    """Hold the run at the start of step ``step`` + 1 until a signal stops it.

    Every process writes ``<marker>.rank<r>`` (its pid) when it gets there; the first then waits
    (the others go on, and wait at the next exchange with it). SIGINT ends the wait with
    KeyboardInterrupt, SIGTERM with Lightning's flag; SIGKILL ends the process.
    """

    def __init__(self, step: int, marker: str) -> None:
        self.step = step
        self.marker = marker

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if trainer.global_step != self.step:
            return
        Path(f"{self.marker}.rank{trainer.global_rank}").write_text(str(os.getpid()))
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while trainer.is_global_zero and not trainer.received_sigterm:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no signal came within {PAUSE_LIMIT_S} s")
            time.sleep(0.02)


@dataclass
class Kill:
    """A run to stop with ``signal`` after ``step``, in ``root`` (its args: ``args``)."""

    signal: str
    step: int
    root: Path
    args: list[str]
    processes: int = 1
    #: what the stopped run printed (stdout and stderr), once ``stop`` has stopped it
    output: str = ""


@dataclass
class Row:
    signal: str
    kill_step: int  # the run was held after this step
    stopped_at: int  # the last step it completed
    resumed_from: int  # last.ckpt's step when it was resumed
    max_diff: float  # max |ΔI_pre| at the end, against the uninterrupted run

    @property
    def lost(self) -> int:
        """Steps the resumed run computes a second time."""
        return self.stopped_at - self.resumed_from


def run_dir(root: Path, version: int) -> Path:
    return root / "alexnet_conv2" / f"version_{version}"


def last_checkpoint(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def finish(process: subprocess.Popen, what: str, code: int = 0) -> str:
    """Wait for a launched run; its output, or an error if it did not exit with ``code``."""
    output = process.communicate(timeout=300)[0]
    if process.returncode != code:
        raise RuntimeError(f"{what}: exit {process.returncode}, expected {code}:\n{output[-3000:]}")
    return output


def fit(root: Path, args: list[str], processes: int = 1) -> None:
    """A run to its end: in this process when it is one process (no start-up cost), else launched
    (a multi-process run re-runs its command line for the other processes)."""
    if processes == 1:
        cli(args)
    else:
        finish(launch(root, args), f"{root.name}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")  # an orphan nobody reaps stays a zombie: it has exited
    return status.exists() and "\nState:\tZ" in status.read_text()


def stop(kill: Kill, process: subprocess.Popen) -> None:
    """Wait until the run is held after its step, send the signal to its first process and wait
    until every process of it has exited."""
    ranks = [kill.root / f"paused.rank{r}" for r in range(kill.processes)]
    deadline = time.monotonic() + 300
    while not all(p.exists() for p in ranks) and process.poll() is None:
        time.sleep(0.05)
    if not all(p.exists() for p in ranks):
        process.kill()
        finish(process, f"reaching step {kill.step}", code=-signal.SIGKILL)
    process.send_signal(getattr(signal, kill.signal))
    kill.output = finish(process, f"{kill.signal} after step {kill.step}", EXIT_CODES[kill.signal])
    pids = [int(p.read_text()) for p in ranks[1:]]
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)  # the other processes stop at their next exchange with the first


def inject(kills: list[Kill], reference: torch.Tensor) -> list[Row]:
    """Start every run (they run side by side), stop each after its step with its signal, resume
    it from version_0's last.ckpt to the end (as version_1) and compare with ``reference``."""
    processes = []
    for kill in kills:
        pause = {"class_path": "benchmarks.faults.PauseAt",
                 "init_args": {"step": kill.step, "marker": str(kill.root / "paused")}}  # fmt: skip
        processes.append(
            launch(kill.root, [*kill.args, f"--trainer.callbacks={json.dumps([pause])}"])
        )
    for kill, process in zip(kills, processes):
        stop(kill, process)
    rows = []
    for kill in kills:
        killed = run_dir(kill.root, 0)
        resumed_from = last_checkpoint(killed)["global_step"]
        # SIGINT and SIGTERM write the step they stopped at; SIGKILL stops where the run was held.
        stopped = (
            kill.step if kill.signal == "SIGKILL"
            else json.loads((killed / "results.json").read_text())["steps"]
        )  # fmt: skip
        last = killed / "checkpoints" / "last.ckpt"
        fit(kill.root, [*kill.args, f"--ckpt_path={last}"], kill.processes)
        I_pre = last_checkpoint(run_dir(kill.root, 1))["state_dict"]["inversion.I_pre"]
        max_diff = (I_pre - reference).abs().max().item()
        rows.append(Row(kill.signal, kill.step, stopped, resumed_from, max_diff))
    return rows


def reference_run(root: Path, args: list[str], processes: int = 1) -> torch.Tensor:
    """The uninterrupted run's final I_pre."""
    fit(root, args, processes)
    return last_checkpoint(run_dir(root, 0))["state_dict"]["inversion.I_pre"]


def table(rows: list[Row], tolerance: float) -> str:
    lines = [
        "| signal | killed after step | stopped at | resumed from | steps lost | max abs ΔI_pre | equal |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        equal = "yes" if r.max_diff <= tolerance else "no"
        lines.append(f"| {r.signal} | {r.kill_step} | {r.stopped_at} | {r.resumed_from} | {r.lost} "
                     f"| {r.max_diff:.1e} | {equal} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="a kill point every 4 steps (default: 3)"
    )
    parser.add_argument("--steps", type=int, nargs="+", help="kill points (overrides --full)")
    parser.add_argument("--signals", nargs="+", default=list(EXIT_CODES), choices=list(EXIT_CODES))
    parser.add_argument("--tolerance", type=float, default=0.0, help="max |ΔI_pre| called equal")
    options = parser.parse_args()
    steps = options.steps or (list(range(3, 60, 4)) if options.full else [7, 22, 41])
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        from PIL import Image

        image = Path(folder) / "coffee.png"
        picture = Image.fromarray(PHOTOS["coffee"]())
        picture.thumbnail((144, 96))  # as the tests' photos fixture
        picture.save(image)

        def args(root: Path) -> list[str]:
            return tiny_args(root, image, "--checkpoint.every_n_train_steps=5")

        reference = reference_run(Path(folder) / "reference", args(Path(folder) / "reference"))
        for step in steps:  # the signals of one kill point side by side
            roots = {name: Path(folder) / f"{name}_{step}" for name in options.signals}
            rows += inject(
                [Kill(name, step, root, args(root)) for name, root in roots.items()], reference
            )
            print(f"after step {step}: {rows[-len(roots) :]}", file=sys.stderr)
    print(table(rows, options.tolerance))
    lost = {name: [r.lost for r in rows if r.signal == name] for name in options.signals}
    print(
        f"\n{len(rows)} kills survived in {time.perf_counter() - start:.0f} s; steps lost per kill: "
        + ", ".join(f"{n} mean {sum(v) / len(v):.1f}, max {max(v)}" for n, v in lost.items())
        + f"; equal to the uninterrupted run: "
        f"{sum(r.max_diff <= options.tolerance for r in rows)}/{len(rows)}"
    )


if __name__ == "__main__":
    main()
