"""Sweeps (sweep.py): their jobs, summary files and the checks made before anything runs."""

import csv
import json
from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from slp_lightning import FeatureInversion
from slp_lightning.callbacks import PyramidSwitch
from slp_lightning.callbacks import checkpoint as checkpoint_module
from slp_lightning.cli.commands import main
from slp_lightning.running.sweep import Sweep

from helpers import refused, resume_hint, tiny_args


def test_sweep_jobs() -> None:
    sweep = Sweep(methods=["slp", "pixel"], layers=["conv1", "conv5"], pyramid_levels=[3, 6])
    jobs = sweep.jobs("slp", "alexnet", "conv5")
    assert [job.name(sweep) for job in jobs] == [
        "slp_K3_conv1", "slp_K6_conv1", "slp_K3_conv5", "slp_K6_conv5", "pixel_conv1", "pixel_conv5",
    ]  # fmt: skip
    assert not Sweep() and Sweep().jobs("tv", "alexnet", "fc6")[0].method == "tv"
    networks = Sweep(networks=["dsift", "dsift_color"], methods=["slp", "pixel"])
    assert [job.name(networks) for job in networks.jobs("slp", "dsift", None)] == [
        "slp_dsift",
        "slp_dsift_color",
        "pixel_dsift",
        "pixel_dsift_color",
    ]


@pytest.mark.slow
def test_sweep_writes_the_summary_files(tmp_path: Path, photos: Path) -> None:
    main(tiny_args(tmp_path, photos, "--trainer.max_steps=20",
                   "--sweep.layers=[conv1, conv2]", "--sweep.methods=[slp, pixel]"))  # fmt: skip
    run = tmp_path / "alexnet_sweep" / "version_0"
    with open(run / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns = "method,network,layer,images,steps,mean_normalized_error,mean_relative_error,mean_psnr,mean_ssim"
    assert set(columns.split(",")) <= set(rows[0])
    assert [(r["method"], r["layer"]) for r in rows] == [
        ("slp", "conv1"),
        ("slp", "conv2"),
        ("pixel", "conv1"),
        ("pixel", "conv2"),
    ]
    for row in rows:
        results = json.loads((run / row["job"] / "results.json").read_text())
        assert float(row["mean_normalized_error"]) == pytest.approx(
            results["mean_normalized_error"]
        )
        assert (
            row["images"] == "3"
            and 0 < int(row["steps"]) <= 20
            and 0 < float(row["mean_normalized_error"]) < 2
        )
        image = results["images"][0]
        assert image["normalized_error"] == pytest.approx(
            image["feature_error"] / results["N_f"], rel=1e-5
        )
    table = (run / "summary.md").read_text()
    assert "| method | conv1 | conv2 |" in table and "| pixel |" in table and "| slp |" in table
    assert (run / "summary.png").stat().st_size > 1000 and (run / "config.yaml").exists()


@pytest.mark.slow
def test_bad_sweeps_and_settings_fail_before_anything_runs(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(ValueError, match=r"^methods: unknown \['magic'\]; valid: slp, pixel, tv"):
        Sweep(methods=["slp", "magic"])
    with pytest.raises(ValueError, match="^networks: unknown"):
        Sweep(networks=["vgg99"])
    with pytest.raises(ValueError, match="pyramid_levels must be an integer >= 1"):
        Sweep(pyramid_levels=[0])
    with pytest.raises(ValueError, match="alexnet has no layer 'norm1'"):
        main(tiny_args(tmp_path, photos, "--sweep.layers=[conv1, norm1]"))
    with pytest.raises(
        ValueError, match="too small for a 7-level Laplacian pyramid"
    ):  # 64 px images
        main(tiny_args(tmp_path, photos, "--sweep.pyramid_levels=[3, 7]"))
    assert not list(tmp_path.rglob("results.json"))
    with pytest.raises(ValueError, match="compactness must be a number >= 0"):
        FeatureInversion(weights="random", compactness=-1.0)


@pytest.mark.slow
def test_a_sweep_runs_from_python_and_returns_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning.pytorch as pl
    import torchvision

    from slp_lightning import OutputWriter, PyramidSwitch, TargetImages
    from slp_lightning.networks import alexnet
    from slp_lightning.running.sweep import run

    def trainer_for(logger) -> pl.Trainer:  # noqa: ANN001
        return pl.Trainer(max_steps=8, logger=logger, callbacks=[PyramidSwitch(), OutputWriter()],
                          enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False)  # fmt: skip

    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    data = TargetImages("skimage:astronaut", image_size=64)
    built = []
    monkeypatch.setattr(alexnet, "alexnet", lambda: built.append(1) or torchvision.models.alexnet())
    rows = run(
        Sweep(methods=["slp", "pixel"], layers=["conv1", "conv2"]),
        model,
        data,
        trainer_for,
        tmp_path / "v0",
    )
    assert (
        len(built) == 1
    )  # four jobs, one AlexNet: cut at each job's layer (weights.reused_models)
    assert [(r["method"], r["layer"], r["column"]) for r in rows] == [
        ("slp", "conv1", "conv1"), ("slp", "conv2", "conv2"), ("pixel", "conv1", "conv1"), ("pixel", "conv2", "conv2"),
    ]  # fmt: skip
    for row in rows:  # in memory, the same numbers as the job's results.json
        results = json.loads((tmp_path / "v0" / row["job"] / "results.json").read_text())
        assert (
            row["mean_normalized_error"] == results["mean_normalized_error"] and row["steps"] == 8
        )
    with pytest.raises(ValueError, match="a sweep.s Trainers need an OutputWriter"):
        run(
            Sweep(layers=["conv1"]),
            model,
            data,
            lambda logger: pl.Trainer(logger=logger),
            tmp_path / "v1",
        )


def stop_at(monkeypatch: pytest.MonkeyPatch, step: int, job: str | None = None) -> list[str]:
    """Make the next run stop at the end of ``step`` (of job ``job`` only, when given) as Lightning
    stops on SIGTERM; returns the list the checkpoint's messages go to."""
    said: list[str] = []
    monkeypatch.setattr(checkpoint_module, "rank_zero_info", said.append)
    step_end = PyramidSwitch.on_train_batch_end

    def stop(self: PyramidSwitch, trainer: Trainer, *rest: object) -> None:
        step_end(self, trainer, *rest)
        if trainer.global_step == step and job in (None, Path(trainer.log_dir).name):
            raise SIGTERMException  # how Lightning stops a run on SIGTERM, at a step's end

    monkeypatch.setattr(PyramidSwitch, "on_train_batch_end", stop)
    return said


@pytest.mark.slow
def test_a_stopped_sweep_prints_the_command_that_resumes_it_to_the_same_results(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sweep(root: Path) -> list[str]:
        return tiny_args(root, photos / "coffee.png", "--trainer.max_steps=12",
                         "--checkpoint.every_n_train_steps=5", "--sweep.methods=[slp, pixel, tv]")  # fmt: skip

    main(sweep(tmp_path / "straight"))
    said = stop_at(monkeypatch, 7, "pixel_conv2")
    with pytest.raises(SIGTERMException):
        main(sweep(tmp_path / "stopped"))
    run_dir = tmp_path / "stopped" / "alexnet_sweep" / "version_0"
    command = resume_hint(said[-1], 7)
    assert command == ["fit", "--config", str(run_dir / "config.yaml"), "--ckpt_path", str(run_dir)]
    assert not (run_dir / "summary.csv").exists()
    monkeypatch.undo()
    main(command)  # the printed command, as it is: slp is skipped, pixel goes on, tv runs
    straight = tmp_path / "straight" / "alexnet_sweep" / "version_0"
    for job in ["slp_conv2", "pixel_conv2", "tv_conv2"]:
        got, want = (
            json.loads((d / job / "results.json").read_text()) for d in (run_dir, straight)
        )
        assert got["status"] == "finished" and got["images"] == want["images"], job
    with open(run_dir / "summary.csv") as resumed, open(straight / "summary.csv") as uninterrupted:
        drop = ("seconds",)
        rows = [[{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]
                for f in (resumed, uninterrupted)]  # fmt: skip
    assert rows[0] == rows[1] and len(rows[0]) == 3


@pytest.mark.slow
def test_a_sweep_resumed_with_other_settings_or_from_a_file_is_refused(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    args = tiny_args(
        tmp_path, photos / "coffee.png", "--trainer.max_steps=4", "--sweep.methods=[slp, pixel]"
    )
    main(args)
    run_dir = tmp_path / "alexnet_sweep" / "version_0"
    line = refused(capsys, [*args, "--model.layer=conv1", f"--ckpt_path={run_dir}"])
    assert line.startswith(
        f"error: cannot resume {run_dir}: it is a sweep of another problem (layer: "
    )
    line = refused(
        capsys, [*args, f"--ckpt_path={run_dir / 'slp_conv2' / 'checkpoints' / 'last.ckpt'}"]
    )
    assert "is a checkpoint file: a sweep resumes from its folder" in line
    results = {
        job: (run_dir / job / "results.json").stat().st_mtime_ns
        for job in ["slp_conv2", "pixel_conv2"]
    }
    summary = (run_dir / "summary.csv").read_text()
    main([*args, f"--ckpt_path={run_dir}"])  # finished: every job skipped, nothing runs again
    assert {job: (run_dir / job / "results.json").stat().st_mtime_ns for job in results} == results
    assert (run_dir / "summary.csv").read_text() == summary


@pytest.mark.slow
def test_a_batched_sweep_writes_each_job_as_its_own_run_does(
    tmp_path: Path, two_photos: Path
) -> None:
    axes = [
        "--sweep.compactness=[0.01, 1]",
        "--sweep.pyramid_levels=[2, 3]",
        "--sweep.methods=[slp, pixel]",
    ]
    for batch in ("true", "false"):  # two photographs: a job stops when both are done
        main(tiny_args(tmp_path / batch, two_photos, "--trainer.max_steps=150", "--switch.final_patience=10",
                       "--switch.rel_tol=0.02", *axes, f"--sweep.batch={batch}"))  # fmt: skip
    batched, alone = (tmp_path / b / "alexnet_sweep" / "version_0" for b in ("true", "false"))
    # λ_D x K as four rows of one batch (its own TensorBoard and checkpoints); pixel alone
    assert sorted(p.name for p in batched.glob("batch_*")) == ["batch_slp_lambda0.01_K2_conv2"]
    assert not list(alone.glob("batch_*"))
    events = EventAccumulator(str(batched / "batch_slp_lambda0.01_K2_conv2"))
    events.Reload()
    assert {"loss_per_job/Z_lambda0.01_K2", "loss_per_job/Z_lambda1_K3"} <= set(
        events.Tags()["scalars"]
    )
    jobs = [
        "slp_lambda0.01_K2_conv2",
        "slp_lambda0.01_K3_conv2",
        "slp_lambda1_K2_conv2",
        "slp_lambda1_K3_conv2",
    ]
    steps = set()
    for job in [*jobs, "pixel_conv2"]:
        got, want = (json.loads((d / job / "results.json").read_text()) for d in (batched, alone))
        assert (got["compactness"], got["pyramid_levels"]) == (
            want["compactness"],
            want["pyramid_levels"],
        )
        assert got["steps"] == want["steps"] and got["N_f"] == want["N_f"], job
        for mine, own in zip(got["images"], want["images"], strict=True):
            assert (mine["name"], mine["final_level"]) == (own["name"], own["final_level"])
            assert mine["switch_steps"] == own["switch_steps"], job
            # the same maths in a larger batch: the convolutions' sums in another order
            assert mine["feature_error"] == pytest.approx(own["feature_error"], rel=1e-3), job
        assert got["mean_normalized_error"] == pytest.approx(
            want["mean_normalized_error"], rel=1e-3
        )
        assert sorted(p.name for p in (batched / job / "reconstructions").iterdir()) == sorted(
            p.name for p in (alone / job / "reconstructions").iterdir()
        )
        assert (batched / job / "sheet.png").stat().st_size > 1000
        steps.add(got["steps"])
    assert len(steps) > 1  # the jobs stopped at steps of their own: each was frozen at its stop
    with open(batched / "summary.csv") as one, open(alone / "summary.csv") as other:
        rows = [
            [(r["job"], r["steps"], r["pyramid_levels"]) for r in csv.DictReader(f)]
            for f in (one, other)
        ]
    assert rows[0] == rows[1] and len(rows[0]) == 5


@pytest.mark.slow
def test_a_stopped_batch_resumes_to_its_jobs_own_results(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sweep(root: Path) -> list[str]:
        return tiny_args(root, photos / "coffee.png", "--trainer.max_steps=100", "--switch.rel_tol=0.02",
                         "--switch.final_patience=10", "--checkpoint.every_n_train_steps=5",
                         "--sweep.compactness=[0.01, 1]")  # fmt: skip

    main(sweep(tmp_path / "straight"))
    said = stop_at(monkeypatch, 12)  # in the batch of both jobs
    with pytest.raises(SIGTERMException):
        main(sweep(tmp_path / "stopped"))
    monkeypatch.undo()
    run_dir = tmp_path / "stopped" / "alexnet_sweep" / "version_0"
    main(resume_hint(said[-1], 12))
    straight = tmp_path / "straight" / "alexnet_sweep" / "version_0"
    jobs = ["slp_lambda0.01_conv2", "slp_lambda1_conv2"]

    def results() -> list[dict]:
        return [
            json.loads((d / job / "results.json").read_text())
            for d in (run_dir, straight)
            for job in jobs
        ]

    got = results()
    assert got[:2] == got[2:] and got[0]["steps"] < 100  # the same numbers; each job's own stop
    (run_dir / "jobs.jsonl").unlink()  # finished, its lines lost: the batch's checkpoint answers
    main(resume_hint(said[-1], 12))
    assert results() == got and len((run_dir / "jobs.jsonl").read_text().splitlines()) == 2
