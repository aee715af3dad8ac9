import csv
import json
import logging
import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.transforms.v2.functional import pil_to_tensor

from slp_lightning.callbacks import StepProgressBar
from slp_lightning.cli import quiet
from slp_lightning.cli.commands import command, main
from slp_lightning.data.images import load_image
from slp_lightning.networks import build_feature_network
from slp_lightning.networks.weights import RandomWeightsWarning, warn_random

from helpers import launch, tiny_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")  # a 20 s run: the tests that use it are slow
def run(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLP_LIGHTNING_OFFLINE", "1")
        main(tiny_args(root, photos, "--outputs.image_every_n_steps=20"))
    return root / "alexnet_conv2" / "version_0"


@pytest.mark.slow
def test_run_writes_the_output_contract(run: Path) -> None:
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "last.ckpt").exists()
    results = json.loads((run / "results.json").read_text())
    assert {k: results[k] for k in ["network", "layer", "weights", "pyramid_levels", "compactness"]} == {
        "network": "alexnet", "layer": "conv2", "weights": "random (seed 0)",
        "pyramid_levels": 3, "compactness": 0.01,
    }  # fmt: skip
    assert [image["name"] for image in results["images"]] == ["astronaut", "chelsea", "coffee"]
    assert results["mean_relative_error"] == pytest.approx(
        sum(i["relative_error"] for i in results["images"]) / 3
    )
    for image in results["images"]:
        assert len(image["switch_steps"]) == 2 and image["switch_steps"] == sorted(
            image["switch_steps"]
        )
        for level in (3, 2, 1):
            assert (run / "reconstructions" / f"{image['name']}_level{level}.png").exists()
    assert (run / "sheet.png").exists()


@pytest.mark.slow
def test_pngs_agree_with_results(run: Path, photos: Path) -> None:
    """Re-measuring the saved PNG gives the error in results.json (up to 8-bit rounding)."""
    results = json.loads((run / "results.json").read_text())
    network = build_feature_network("alexnet", "conv2", "random")
    for image in results["images"]:
        png = (
            pil_to_tensor(Image.open(run / "reconstructions" / f"{image['name']}.png")).float()
            / 255
        )
        target = load_image(str(photos / f"{image['name']}.png"), 64)
        with torch.no_grad():
            error = (network(png[None]) - network(target[None])).norm().item()
        assert error == pytest.approx(image["feature_error"], rel=0.05)


@pytest.mark.slow
def test_tensorboard_has_the_scalars_and_images(run: Path) -> None:
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/E", "loss/D", "loss/Z", "pyramid/level"} <= set(tags["scalars"])
    assert {"targets", "I_r", "I_in"} <= set(tags["images"])
    levels = [e.value for e in events.Scalars("pyramid/level")]
    assert levels[0] == 3 and levels[-1] < levels[0]
    assert len(events.Images("I_r")) >= 3  # every 20 steps and at each switch


@pytest.mark.slow
def test_config_file_runs_with_overrides(tmp_path: Path) -> None:
    args = tiny_args(tmp_path, "skimage:coffee", "--trainer.max_steps=3")
    main([args[0], f"--config={ROOT / 'configs' / 'alexnet_conv5.yaml'}", *args[1:]])
    results = json.loads((tmp_path / "alexnet_conv2" / "version_0" / "results.json").read_text())
    assert results["steps"] == 3 and results["pyramid_levels"] == 3


def test_unknown_layer_fails_at_start_with_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown alexnet layer 'conv9'; valid layers: conv1"):
        main(tiny_args(tmp_path, "skimage:coffee", "--model.layer=conv9"))
    assert not list(tmp_path.rglob("*.ckpt"))


def test_help_and_print_config_from_the_command_line(capsys: pytest.CaptureFixture) -> None:
    def cli(*args: str) -> str:
        with pytest.raises(SystemExit) as stop:
            main(["fit", *args])
        assert stop.value.code in (0, None)
        return capsys.readouterr().out

    shown = cli("--help")
    assert "--model.layer" in shown and "--switch.patience" in shown
    printed = cli(
        "--config",
        str(ROOT / "configs/alexnet_conv5.yaml"),
        "--model.layer",
        "conv4",
        "--print_config",
    )
    assert "layer: conv4" in printed and "compactness: 0.01" in printed


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--model.method=magic", "unknown method 'magic'; valid methods: slp, pixel, tv"),
        ("--data.images=nothing.png", "image 'nothing.png': no such file, folder or glob match"),
        ("--model.weights=IMAGENET1K_V1", "cannot load AlexNet weights IMAGENET1K_V1: .* Put the file at"),
        ("--trainer.max_steps=0", "--trainer.max_steps must be a number of steps >= 1, or -1 for no limit"),
        ("--switch.contrast_scales=[0.5, 2]", r"--switch.contrast_scales are shares of an image's contrast"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line_and_leave_no_run_folder(
    tmp_path: Path, option: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit:
        command(tiny_args(tmp_path, "skimage:coffee", option))
    error = capsys.readouterr().err
    assert exit.value.code == 2 and re.search(f"^error: {message}", error, re.M), error
    assert "Traceback" not in error and not list(tmp_path.iterdir())


def test_too_small_an_image_for_the_layer_is_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit):
        command(
            tiny_args(
                tmp_path, "skimage:coffee", "--model.pyramid_levels=1", "--model.image_size=8"
            )
        )
    assert "error: alexnet conv2 cannot take 8x8 px images (" in capsys.readouterr().err


def test_debug_shows_the_traceback_and_internal_errors_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLP_LIGHTNING_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown method"):
        command(tiny_args(tmp_path, "skimage:coffee", "--model.method=magic"))
    monkeypatch.delenv("SLP_LIGHTNING_DEBUG")

    def bug(*args: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("slp_lightning.cli.commands.main", bug)
    with pytest.raises(KeyError, match="a bug"):
        command([])


def test_only_fit_is_offered(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit:
        command(["--help"])
    listed = capsys.readouterr().out
    assert exit.value.code == 0 and "{fit}" in listed
    assert not {"validate", "test", "predict"} & set(re.findall(r"\w+", listed))
    with pytest.raises(SystemExit) as exit:
        command(["validate"])
    assert exit.value.code == 2
    assert "invalid choice: 'validate' (choose from 'fit')" in capsys.readouterr().err


# What Lightning printed on every run before it was silenced (quiet.py), as it printed it.
LIGHTNING_NOISE = [
    "Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading",
    "module(s) in eval mode at the start of training. This may lead to unexpected behavior",
    "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)",
    "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]",
]
# Lightning's warnings in full, as Lightning 2.6 words them (the last two: on a resume).
LIGHTNING_WARNINGS = [
    (UserWarning, "Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading "
     "(when num_workers > 1), `__len__` could be inaccurate if each worker is not configured independently to "
     "avoid having duplicate data."),
    ("possible", "Found 14 module(s) in eval mode at the start of training. This may lead to unexpected behavior "
     "during training. If this is intentional, you can ignore this warning."),
    (FutureWarning, "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and "
     "treespec.is_leaf()` instead."),
    ("possible", "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not "
     "resumable. This can cause unreliable results if further training is done. Consider using an end-of-epoch "
     "checkpoint or make your dataloader resumable by implementing the `state_dict` / `load_state_dict` interface."),
    (UserWarning, "The dirpath has changed from 'logs/a/version_0/checkpoints' to 'logs/a/version_1/checkpoints', "
     "therefore `best_model_score`, `kth_best_model_path`, `kth_value`, `last_model_path` and `best_k_models` "
     "won't be reloaded. Only `best_model_path` will be reloaded."),
]  # fmt: skip
REPORT_PATH = re.compile(r"^(\w+): +(\S+)")  # a report's "label: path" line, its path up to a space


def reported_paths(lines: list[str], root: Path) -> dict[str, Path]:
    """label -> path of a report's ``label: path`` lines, relative paths from ``root``."""
    return {m[1]: root / m[2] for m in map(REPORT_PATH.match, lines) if m}


@pytest.mark.slow
def test_a_fresh_run_is_quiet_and_ends_with_what_it_produced(tmp_path: Path) -> None:
    """The README's main command, 5 steps: no Lightning message that cannot apply, the loud
    random-weights warning, then the run's report (outputs.report)."""
    process = launch(tmp_path, ["fit", "--config", str(ROOT / "configs" / "alexnet_conv5.yaml"),
                                "--trainer.max_steps", "5"])  # fmt: skip
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output[-3000:]
    for noise in [
        *LIGHTNING_NOISE,
        "The number of training batches",
        "┃ Name",
        "Modules in eval mode",
    ]:
        assert noise not in output, noise
    assert "Using a RANDOM network (seed 0)" in output
    run = Path("logs") / "alexnet_conv5" / "version_0"
    results = json.loads((tmp_path / run / "results.json").read_text())
    *_, headline, reconstructions, sheet, results_line, board = output.rstrip().splitlines()
    error, psnr = 100 * results["mean_normalized_error"], results["mean_psnr"]
    agreement = (
        100 * results["mean_top1_agreement"]
    )  # the config scores with an independent classifier
    assert headline == (f"1 image, 5 steps (finished): mean normalised error {error:.2f} %, mean PSNR {psnr:.2f} dB, "
                        f"top-1 agreement {agreement:.0f} %")  # fmt: skip
    paths = reported_paths([reconstructions, sheet, results_line], tmp_path)
    assert paths == {"reconstructions": tmp_path / run / "reconstructions", "sheet": tmp_path / run / "sheet.png",
                     "results": tmp_path / run / "results.json"}  # fmt: skip
    assert all(path.exists() for path in paths.values())
    assert (tmp_path / run / "reconstructions" / "astronaut.png").exists()
    assert board == f"tensorboard --logdir {run}"
    # Shorter than --trainer.log_every_n_steps (10): the scalars are logged at its last step.
    events = EventAccumulator(str(tmp_path / run))
    events.Reload()
    assert [event.step for event in events.Scalars("loss/Z")] == [4]


@pytest.mark.slow
def test_verbose_brings_lightnings_messages_back(tmp_path: Path, photos: Path) -> None:
    args = [a for a in tiny_args(tmp_path, photos / "coffee.png", "--trainer.max_steps=5", "--verbose")
            if not a.startswith("--trainer.enable_model_summary")]  # fmt: skip
    process = launch(tmp_path, args)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output[-3000:]
    for noise in LIGHTNING_NOISE:
        assert noise in output, noise
    assert "Modules in eval mode: 7" in output  # the model summary
    assert "The number of training batches" not in output  # not silenced: its cause is gone (cli)
    assert output.rstrip().splitlines()[-1].startswith("tensorboard --logdir ")


def test_quiet_silences_only_lightnings_messages_that_cannot_apply() -> None:
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    before = list(warnings.filters)
    with quiet.restored(), warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()  # pytest's own filters (pyproject.toml) would hide some already
        warnings.simplefilter("always")
        quiet.silence_lightning()
        for category, message in LIGHTNING_WARNINGS:
            warnings.warn(message, PossibleUserWarning if category == "possible" else category)
        warn_random("AlexNet", "no weights", "copy them")
        for category, message in [
            (UserWarning, "the gradient of I_pre is exactly zero at the start for some images"),
            (UserWarning, "ResNet was in training mode; it is inverted in eval mode"),
            (
                PossibleUserWarning,
                "The number of training batches (5) is smaller than the logging interval",
            ),
            (UserWarning, "Found 14 module(s) in train mode"),  # the same words, another message
        ]:
            warnings.warn(message, category)
        assert all(quiet._DROP in logger.filters for logger in quiet._loggers())
    assert [w.category for w in shown] == [RandomWeightsWarning, UserWarning, UserWarning, PossibleUserWarning,
                                           UserWarning]  # fmt: skip
    assert warnings.filters == before and not any(
        quiet._DROP in logger.filters for logger in quiet._loggers()
    )
    record = logging.LogRecord(
        "x", logging.INFO, "", 0, LIGHTNING_NOISE[-1] + " to enable LitLogger", (), None
    )
    assert not quiet._DROP.filter(record)
    assert quiet._DROP.filter(
        logging.LogRecord("x", logging.INFO, "", 0, "GPU available: False", (), None)
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sweep", "chunks"])
def test_a_sweep_and_a_chunked_run_end_with_their_summary_lines(
    tmp_path: Path, photos: Path, kind: str, capsys: pytest.CaptureFixture
) -> None:
    extra = ["--sweep.layers=[conv1, conv2]"] if kind == "sweep" else ["--data.chunk_size=2"]
    main(tiny_args(tmp_path, photos, "--trainer.max_steps=5", *extra))
    lines = capsys.readouterr().out.rstrip().splitlines()
    files = {"sweep": 2, "chunks": 3}[kind]  # summary and jobs; summary, results and chunks
    headline, paths, board = (
        lines[-2 - files],
        reported_paths(lines[-1 - files : -1], tmp_path),
        lines[-1],
    )
    run = tmp_path / ("alexnet_sweep" if kind == "sweep" else "alexnet_conv2_chunks") / "version_0"
    assert all(path.exists() for path in paths.values()) and board == f"tensorboard --logdir {run}"
    if kind == "sweep":
        with open(run / "summary.csv") as handle:
            best = min(csv.DictReader(handle), key=lambda row: float(row["mean_normalized_error"]))
        assert headline.startswith(f"sweep of 2 jobs, the best {best['job']}: mean normalised error "
                                   f"{100 * float(best['mean_normalized_error']):.2f} %, mean PSNR ")  # fmt: skip
        assert paths == {"summary": run / "summary.md", "jobs": run}
    else:
        summary = json.loads((run / "summary.json").read_text())
        assert headline == (f"3 images in 2 chunks: mean normalised error {100 * summary['mean_normalized_error']:.2f} "
                            f"%, mean PSNR {summary['mean_psnr']:.2f} dB")  # fmt: skip
        assert paths == {
            "summary": run / "summary.json",
            "results": run / "results.jsonl",
            "chunks": run,
        }


def test_the_progress_bar_counts_steps_with_the_level_and_loss_and_no_epoch(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StepProgressBar, "MIN_INTERVAL", 0.0)  # drawn at every step
    main(tiny_args(tmp_path, photos / "coffee.png", "--trainer.max_steps=12",
                   "--trainer.enable_progress_bar=true"))  # fmt: skip
    bar = capsys.readouterr().out.replace("\r", "\n")
    assert re.search(r"^step 12/12 \|█+\| \[.*steps/s, level=\d, loss=[\d.]+\]", bar, re.M), bar
    assert re.search(r"^step 3/12 .*level=3, loss=", bar, re.M), bar  # the coarsest level first
    assert "Epoch" not in bar
