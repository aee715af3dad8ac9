"""Several processes invert their own images; mixed precision; resume across processes."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slp_lightning import FeatureInversion
from slp_lightning.module.distributed import (
    IndependentDDPStrategy,
    check_strategy,
    gather_rows,
    shard,
)
from slp_lightning.running.dealing import needs_processes

from helpers import classifier_args, tiny_args

ROOT = Path(__file__).resolve().parents[1]


def test_shards_are_round_robin_and_gather_restores_target_order() -> None:
    total, world = 5, 2
    full = torch.arange(total * 2).view(total, 2)
    parts = [full[shard(total, rank, world)] for rank in range(world)]
    assert [p[:, 0].tolist() for p in parts] == [[0, 4, 8], [2, 6]]
    padded = []

    def all_gather(local: torch.Tensor) -> torch.Tensor:  # what each rank would send
        padded.append(local)
        return torch.stack([torch.cat([p, p.new_zeros(3 - len(p), 2)]) for p in parts])

    assert torch.equal(gather_rows(parts[0], total, world, all_gather), full)
    assert padded[0].shape == (3, 2)


@pytest.mark.parametrize(
    ("accelerator", "devices", "nodes", "expected"),
    [("cpu", 2, 1, True), ("cpu", "2", 1, True), ("cpu", "auto", 1, False), ("gpu", "0,1", 1, True),
     ("gpu", "0,", 1, False), ("gpu", [3], 1, False), ("cpu", 1, 2, True)],
)  # fmt: skip
def test_needs_processes(
    accelerator: str, devices: int | str | list[int], nodes: int, expected: bool
) -> None:
    assert needs_processes(accelerator, devices, nodes) is expected


def start(root: Path, images: Path, *extra: str) -> subprocess.Popen:
    """A tiny CPU run in a subprocess (multi-process runs must not re-run pytest)."""
    root.mkdir(parents=True, exist_ok=True)
    args = [*tiny_args(root, images), "--trainer.accelerator=cpu", *extra]
    # One thread each: a sum over 2 threads rounds differently from one over 1, and the tests
    # compare 1 process with 2 to the digit.
    env = {
        **os.environ,
        "SLP_LIGHTNING_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "slp_lightning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env,
    )  # fmt: skip


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def fit(root: Path, images: Path, *extra: str) -> subprocess.CompletedProcess:
    return finish(start(root, images, *extra))


def one_and_two(root: Path, images: Path, *extra: str) -> dict[int, subprocess.CompletedProcess]:
    """The same run on 1 and on 2 processes, started together (their start-up is most of the
    time), in ``root/1`` and ``root/2``."""
    started = {
        devices: start(root / str(devices), images, f"--trainer.devices={devices}", *extra)
        for devices in (1, 2)
    }
    return {devices: finish(process) for devices, process in started.items()}


def results(root: Path, version: int = 0) -> dict:
    return json.loads((root / "alexnet_conv2" / f"version_{version}" / "results.json").read_text())


@pytest.mark.slow
def test_two_processes_give_the_same_images_as_one_and_resume_to_them(
    tmp_path: Path, two_photos: Path
) -> None:
    """The images, N_f, the metrics and the semantic scores (each process scores its own images);
    resuming the two processes' step-30 checkpoint ends where their straight run ends."""
    common = ["--checkpoint.every_n_train_steps=30", "--checkpoint.on_switch=false",
              "--checkpoint.save_top_k=-1", *classifier_args(tmp_path)]  # fmt: skip
    runs = one_and_two(tmp_path, two_photos, *common)
    one, two = runs[1], runs[2]
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = results(tmp_path / "1"), results(tmp_path / "2")
    assert [i["name"] for i in b["images"]] == ["astronaut", "chelsea"]
    # N_f and the cross-process metric agree with one process.
    assert b["N_f"] == pytest.approx(a["N_f"], rel=1e-6)
    assert b["mean_normalized_error"] == pytest.approx(a["mean_normalized_error"], rel=1e-4)
    for x, y in zip(a["images"], b["images"]):
        assert y["feature_error"] == pytest.approx(x["feature_error"], rel=1e-4)
        assert y["switch_steps"] == x["switch_steps"]
        for side in ("target", "reconstruction"):
            assert y["semantic"][side]["class"] == x["semantic"][side]["class"]
            assert y["semantic"][side]["p"] == pytest.approx(x["semantic"][side]["p"], rel=1e-3)
        assert y["semantic"]["feature_distance"] == pytest.approx(
            x["semantic"]["feature_distance"], rel=1e-3
        )
    assert b["mean_top1_agreement"] == a["mean_top1_agreement"]
    # The two images are different, so the two processes did not end with the same I_pre.
    assert b["images"][0]["feature_error"] != pytest.approx(
        b["images"][1]["feature_error"], rel=0.01
    )
    run = tmp_path / "2" / "alexnet_conv2" / "version_0"
    assert {p.name for p in (run / "reconstructions").glob("*.png")} >= {
        "astronaut.png",
        "chelsea.png",
    }
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert (
        state["state_dict"]["inversion.I_pre"].shape[0] == 2
    )  # both processes' images in one file
    checkpoint = next((run / "checkpoints").glob("*step=30.ckpt"))
    resumed = fit(
        tmp_path / "2", two_photos, "--trainer.devices=2", *common, f"--ckpt_path={checkpoint}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    c = results(tmp_path / "2", version=1)
    assert b["steps"] == c["steps"] == 60
    for x, y in zip(b["images"], c["images"]):
        assert y["feature_error"] == pytest.approx(x["feature_error"], rel=1e-4)
        assert y["switch_steps"] == x["switch_steps"]


def test_plain_ddp_is_refused_before_any_target_is_taken() -> None:
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    model._trainer = SimpleNamespace(
        strategy=DDPStrategy(), precision="32-true"
    )  # as Trainer.fit would
    with pytest.raises(
        ValueError, match="strategy DDPStrategy would average the gradients of I_pre"
    ):
        model.setup("fit")
    assert model.inversion.I_pre is None
    for fine in (IndependentDDPStrategy(), SingleDeviceStrategy("cpu")):
        check_strategy(fine)


@pytest.mark.slow
def test_bf16_mixed_precision_stays_close_to_fp32(tmp_path: Path, photos: Path) -> None:
    from slp_lightning.cli.commands import main

    errors = {}
    for precision in ["32-true", "bf16-mixed"]:
        root = tmp_path / precision
        main(
            tiny_args(
                root,
                photos / "coffee.png",
                f"--trainer.precision={precision}",
                "--trainer.max_steps=80",
            )
        )
        errors[precision] = results(root)["mean_relative_error"]
    assert 0 < errors["bf16-mixed"] < 1.5 * errors["32-true"]


def test_a_lost_process_is_named_in_one_sentence() -> None:
    """The per-step exchange failing (gloo: the peer's socket closed) becomes PeerLostError."""

    from slp_lightning.callbacks import PyramidSwitch
    from slp_lightning.errors import PeerLostError

    def reduce(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise RuntimeError("Connection reset by peer\nsecond line")

    from slp_lightning.maths.schedule import SwitchSchedule

    one = torch.ones(1)
    module = SimpleNamespace(
        schedule=SwitchSchedule(count=1, levels=2),
        device=torch.device("cpu"),
        automatic_optimization=True,
    )
    trainer = SimpleNamespace(global_step=7, max_steps=1000, world_size=2, global_rank=0,
                              strategy=SimpleNamespace(reduce=reduce))  # fmt: skip
    with pytest.raises(PeerLostError, match=r"^process 1 of this 2-process run is gone: the exchange at "
                                            r"step 7 failed \(Connection reset by peer\)$"):  # fmt: skip
        PyramidSwitch().on_train_batch_end(trainer, module, {"per_image": one}, None, 0)


@pytest.mark.slow
def test_two_processes_deal_the_chunks_and_give_the_same_results_as_one(
    tmp_path: Path, photos: Path
) -> None:
    runs = one_and_two(tmp_path, photos, "--data.chunk_size=1", "--trainer.max_steps=6")
    for done in runs.values():
        assert done.returncode == 0, done.stdout + done.stderr
    run_dirs = [tmp_path / str(d) / "alexnet_conv2_chunks" / "version_0" for d in (1, 2)]
    one, two = ((run_dir / "results.jsonl").read_text() for run_dir in run_dirs)
    assert one == two and len(one.splitlines()) == 3  # 3 chunks of 1 image, identical to the digit
    # Whole chunks were dealt to both processes, each writing its chunk's run as its own.
    dealt = runs[2].stdout + runs[2].stderr
    assert "done on process 0" in dealt and "done on process 1" in dealt
    for chunk in sorted(run_dirs[1].glob("chunk_*")):
        assert list(chunk.glob("events.out.tfevents.*")) and (chunk / "results.json").exists()
    assert not (run_dirs[1] / ".claims").exists()


@pytest.mark.slow
def test_two_processes_deal_a_sweeps_jobs_and_write_the_summary_of_one(
    tmp_path: Path, two_photos: Path
) -> None:
    """Three jobs over two images: each process runs whole jobs on its own device, and the
    summary is byte for byte that of one process but for the time each job took."""
    runs = one_and_two(
        tmp_path, two_photos, "--sweep.methods=[slp, pixel, tv]", "--trainer.max_steps=6"
    )
    for done in runs.values():
        assert done.returncode == 0, done.stdout + done.stderr
    run_dirs = [tmp_path / str(d) / "alexnet_sweep" / "version_0" for d in (1, 2)]

    def without_seconds(run_dir: Path) -> list[list[str]]:
        with open(run_dir / "summary.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        column = rows[0].index("seconds")
        return [row[:column] + row[column + 1 :] for row in rows]

    one, two = (without_seconds(run_dir) for run_dir in run_dirs)
    assert one == two and len(one) == 4  # the header and three jobs, identical to the digit
    dealt = runs[2].stdout + runs[2].stderr
    assert "done on process 0" in dealt and "done on process 1" in dealt
    for job in ("slp_conv2", "pixel_conv2", "tv_conv2"):
        assert (run_dirs[1] / job / "results.json").exists()
    assert not (run_dirs[1] / ".claims").exists()
