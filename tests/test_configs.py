"""Every shipped config parses and runs end to end on tiny inputs."""

import json
from pathlib import Path

import pytest
import yaml

from slp_lightning.cli import main
from slp_lightning.networks import layer_names

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
# Smallest sizes each network accepts with 3 pyramid levels (fc layers aside).
TINY = {
    "dsift": 32, "dsift_color": 32, "alexnet": 64, "alexnet_caffe": 67, "torchvision": 32,
    "craft_vgg16_bn": 32,
}  # fmt: skip


def test_there_is_a_config_per_paper_experiment() -> None:
    names = {c.name for c in CONFIGS}
    assert {
        "alexnet_conv5.yaml", "alexnet_caffe.yaml", "sift_grey.yaml", "sift_color.yaml", "vgg16.yaml",
        "table1_alexnet.yaml", "table2_sift.yaml",
    } <= names  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_config_runs_for_a_few_steps(config: Path, tmp_path: Path, photos: Path) -> None:
    settings = yaml.safe_load(config.read_text())
    network = settings["model"]["network"]
    layers = settings.get("sweep", {}).get("layers")
    if layers:  # every layer of a sweep exists; the run itself keeps to the first two
        assert set(layers) <= set(layer_names(network))
    main([
        "fit", f"--config={config}", f"--data.images={photos}", "--model.weights=random",
        f"--model.image_size={TINY[network]}", "--model.pyramid_levels=3",
        "--trainer.max_steps=2", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", f"--trainer.default_root_dir={tmp_path}",
        *([f"--sweep.layers=[{layers[0]}, {layers[1]}]"] if layers else []),
    ])  # fmt: skip
    for path in tmp_path.rglob("results.json"):
        results = json.loads(path.read_text())
        assert results["steps"] == 2 and results["network"].startswith(network.split("_")[0])
        assert 0 < results["mean_normalized_error"] < float("inf")
    if "sweep" in settings:
        assert len(next(tmp_path.rglob("summary.csv")).read_text().splitlines()) > 2
