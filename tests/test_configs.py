"""Every shipped config parses and runs end to end on tiny inputs."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from slp_lightning.cli.commands import command, main
from slp_lightning.networks import layer_names
from slp_lightning.running.sweep import Sweep

from helpers import slow_but

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# Under 3 s on 2 cores; the others (AlexNet at 224 px, VGG16, the two sweeps) take 4-14 s.
FAST_CONFIGS = [ROOT / "configs" / name for name in [
    "alexnet_caffe.yaml", "sift_grey.yaml", "sift_color.yaml", "vgg16_bn_trained.yaml",
]]  # fmt: skip
# Smallest sizes each network accepts with 3 pyramid levels (fc layers aside).
TINY = {  # torchvision, craft_vgg16_bn: their configs' band_lr is a 6-level pyramid, 64 px at least
    "dsift": 32, "dsift_color": 32, "alexnet": 64, "alexnet_caffe": 67, "torchvision": 64,
    "craft_vgg16_bn": 64,
}  # fmt: skip


def test_there_is_a_config_per_paper_experiment() -> None:
    names = {c.name for c in CONFIGS}
    assert {
        "alexnet_conv5.yaml", "alexnet_caffe.yaml", "sift_grey.yaml", "sift_color.yaml", "vgg16.yaml",
        "table1_alexnet.yaml", "table2_sift.yaml",
    } <= names  # fmt: skip


@pytest.mark.parametrize("config", slow_but(CONFIGS, *FAST_CONFIGS), ids=lambda c: c.name)
def test_config_runs_for_a_few_steps(config: Path, tmp_path: Path, photos: Path) -> None:
    settings = yaml.safe_load(config.read_text())
    network = settings["model"]["network"]
    layers = settings.get("sweep", {}).get("layers")
    if layers:  # every layer of a sweep exists; the run itself keeps to the first two
        assert set(layers) <= set(layer_names(network))
    defences = settings.get("sweep", {}).get("defences")  # an audit keeps to its first two
    main([
        "fit", f"--config={config}", f"--data.images={photos}", "--model.weights=random",
        f"--model.image_size={TINY[network]}", "--model.pyramid_levels=3",
        "--trainer.max_steps=2", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", f"--trainer.default_root_dir={tmp_path}",
        *([f"--sweep.layers=[{layers[0]}, {layers[1]}]"] if layers else []),
        *([f"--sweep.defences=[{defences[0]}, {defences[1]}]"] if defences else []),
    ])  # fmt: skip
    written = sorted(tmp_path.rglob("results.json"))
    if "sweep" in settings:  # a results.json per job, in the job's folder next to summary.csv
        run = next(tmp_path.rglob("summary.csv")).parent
        sweep = Sweep(**{**settings["sweep"], **({"layers": layers[:2]} if layers else {}),
                         **({"defences": defences[:2]} if defences else {})})  # fmt: skip
        jobs = sweep.jobs("slp", network, settings["model"].get("layer"))
        assert len(jobs) >= 2 and written == sorted(
            run / job.name(sweep) / "results.json" for job in jobs
        )
        assert len((run / "summary.csv").read_text().splitlines()) == 1 + len(jobs)
    else:
        assert [path.parent.name for path in written] == ["version_0"]
    for path in written:
        results = json.loads(path.read_text())
        assert results["steps"] == 2 and results["network"].startswith(network.split("_")[0])
        assert 0 < results["mean_normalized_error"] < float("inf")
        assert [image["name"] for image in results["images"]] == ["astronaut", "chelsea", "coffee"]
        assert all(0 < image["normalized_error"] < float("inf") for image in results["images"])


def test_a_shipped_config_is_found_by_name_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, network in [("alexnet_conv5", "alexnet"), ("sift_grey.yaml", "dsift"),
                          ("configs/paper/table2_sift.yaml", "dsift")]:  # fmt: skip
        with pytest.raises(SystemExit) as exit:
            command(["fit", "--config", name, "--print_config"])
        assert exit.value.code == 0
        assert yaml.safe_load(capsys.readouterr().out)["model"]["network"] == network
    # A file of that name in the working directory wins.
    (tmp_path / "alexnet_conv5.yaml").write_text("model:\n  layer: conv1\n")
    with pytest.raises(SystemExit):
        command(["fit", "--config=alexnet_conv5.yaml", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["model"]["layer"] == "conv1"
    with pytest.raises(SystemExit) as exit:
        command(["fit", "--config", "alexnet_conv9"])
    assert (
        exit.value.code == 2
        and (
            "error: --config 'alexnet_conv9': no such file, and no shipped config of that name; "
            "shipped configs: alexnet_caffe, alexnet_conv5, audit_mobilenet_v2, mobilenet_v2, paper/table1_alexnet"
        )
        in capsys.readouterr().err
    )


def test_usage_names_the_program(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit:
        command(["fit", "--model.image_size=big"])
    assert (
        exit.value.code == 2
        and "usage: python -m slp_lightning [options] fit" in capsys.readouterr().err
    )


@pytest.mark.slow
def test_a_plain_install_holds_every_module_and_runs(tmp_path: Path) -> None:
    """The wheel that `pip install .` builds holds every module of slp_lightning/ and configs/ as
    slp_lightning/configs/, and a run from it works: unzipped (a pure-Python wheel unzipped is an
    install), first on PYTHONPATH, from another folder; every module imports and none comes from
    the checkout (installed_run.py: the editable install would supply what the wheel lacks)."""
    pytest.importorskip("setuptools", minversion="70.1")  # builds wheels without the wheel package
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    for name in ["slp_lightning", "configs"]:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "setup.py", "README.md"]:
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*build, "-w", str(tmp_path), str(source)], check=True, capture_output=True, timeout=120
    )
    wheel = zipfile.ZipFile(next(tmp_path.glob("*.whl")))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "slp_lightning").rglob("*.py")}
    assert {n for n in wheel.namelist() if n.endswith(".py")} == modules
    shipped = {
        n.removeprefix("slp_lightning/configs/") for n in wheel.namelist() if n.endswith(".yaml")
    }
    assert shipped == {c.relative_to(ROOT / "configs").as_posix() for c in CONFIGS}
    scripts = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "slp-lightning = slp_lightning.cli:command" in wheel.read(scripts).decode()

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    wheel.extractall(site)
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "SLP_LIGHTNING_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "installed_run.py"), str(site), "fit", "--config", "alexnet_conv5",
         "--model.weights", "random", "--model.image_size", "64", "--model.pyramid_levels", "3",
         "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(elsewhere / "logs")],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert [p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("results.json")] == [
        "logs/alexnet_conv5/version_0/results.json"
    ]
