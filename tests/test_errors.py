import subprocess
import sys
from pathlib import Path

import pytest

from slp_lightning.cli.commands import flag
from slp_lightning.cli.exits import errors_as_one_line
from slp_lightning.errors import ArgumentError, check_range

from helpers import refused


def test_an_argument_error_names_arguments_for_python_and_flags_for_the_command_line(
    capsys: pytest.CaptureFixture,
) -> None:
    error = ArgumentError(
        "image_size 50 is too small for pyramid_levels 6 (image_sizes, `image_size`, /x/image_size.png and "
        "C:\\image_size stay)",
        "FeatureInversion.image_size",
        "FeatureInversion.pyramid_levels",
    )
    assert str(error).startswith("image_size 50 is too small for pyramid_levels 6")
    assert isinstance(error, ValueError)  # a user error, as before
    with pytest.raises(SystemExit) as stop, errors_as_one_line(flag):
        raise error
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "error: --model.image_size 50 is too small for --model.pyramid_levels 6 "
        "(image_sizes, `image_size`, /x/image_size.png and C:\\image_size stay)\n"
    )
    assert flag("PyramidSwitch.patience") == "--switch.patience"
    assert flag("Sweep.layers") == "--sweep.layers"
    assert flag("nobody.x") == "x"


@pytest.mark.slow
def test_the_maths_modules_load_without_lightning() -> None:
    code = (
        "import sys, slp_lightning, slp_lightning.maths.pyramid, slp_lightning.maths.losses, slp_lightning.methods;"
        "print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith('lightning.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# Each numeric setting of the command line, one value outside its range: (flags, the flag named).
OUT_OF_RANGE = [
    (["--model.image_size=0"], "--model.image_size"),  # was read as "the network's own size"
    (["--model.pyramid_levels=0"], "--model.pyramid_levels"),
    (["--model.compactness=-1"], "--model.compactness"),
    (["--model.compactness=.nan"], "--model.compactness"),  # YAML's NaN
    (["--model.init_noise=-0.1"], "--model.init_noise"),
    (["--model.n_f=0"], "--model.n_f"),  # was read as "measure it"
    (["--model.coarse_lr=0"], "--model.coarse_lr"),
    (["--model.band_lr=[0, 1]"], "--model.band_lr"),
    (["--model.tv_weights=[-1, 1]"], "--model.tv_weights"),
    (["--model.in_channels=2"], "--model.in_channels"),
    (["--model.optimizer=torch.optim.Adam", "--model.optimizer.lr=0"], "--model.optimizer.lr"),
    (["--model.optimizer=torch.optim.Adam", "--model.optimizer.lr=-1"], "--model.optimizer"),
    (["--data.chunk_size=0"], "--data.chunk_size"),
    (["--switch.rel_tol=1"], "--switch.rel_tol"),
    (["--switch.patience=0"], "--switch.patience"),
    (["--switch.final_patience=0"], "--switch.final_patience"),  # was read as "patience"
    (["--switch.min_steps=-1"], "--switch.min_steps"),
    (["--switch.max_steps_per_level=0"], "--switch.max_steps_per_level"),
    (["--switch.phase_share=0"], "--switch.phase_share"),
    (["--switch.contrast_scales=[1.5]"], "--switch.contrast_scales"),
    (["--outputs.image_every_n_steps=0"], "--outputs.image_every_n_steps"),
    (["--outputs.metrics_every_n_steps=0"], "--outputs.metrics_every_n_steps"),
    (["--eval.batch_size=0"], "--eval.batch_size"),
    (["--checkpoint.every_n_train_steps=-1"], "--checkpoint.every_n_train_steps"),
    (["--checkpoint.save_top_k=-2"], "--checkpoint.save_top_k"),
    (["--sweep.pyramid_levels=[0]"], "--sweep.pyramid_levels"),
    (["--sweep.compactness=[-1]"], "--sweep.compactness"),
    (["--trainer.max_steps=0"], "--trainer.max_steps"),
    (["--trainer.log_every_n_steps=0"], "--trainer.log_every_n_steps"),
    (["--trainer.num_nodes=0"], "--trainer.num_nodes"),
    (["--trainer.accumulate_grad_batches=2"], "--trainer.accumulate_grad_batches"),
    (["--trainer.gradient_clip_val=-1"], "--trainer.gradient_clip_val"),
]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        pytest.param(*case, marks=() if i in (0, 5) else pytest.mark.slow, id=case[0][-1])
        for i, case in enumerate(OUT_OF_RANGE)
    ],
)
def test_a_numeric_setting_outside_its_range_is_one_line_naming_its_flag(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["fit", "--model.weights=random", "--model.layer=conv1", "--model.image_size=32",
            "--model.pyramid_levels=3",
            "--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path}", *flags]  # fmt: skip
    line = refused(capsys, args)
    assert line.startswith(f"error: {named}") or f" {named} " in line, line
    assert not any(tmp_path.iterdir())  # nothing written a later run could take for a result


def test_check_range_refuses_nan_infinity_and_the_wrong_kind_and_takes_none() -> None:
    check_range(None, "FeatureInversion.n_f", low=0, low_open=True)  # absent: the default
    check_range(0.5, "PyramidSwitch.rel_tol", low=0, high=1, high_open=True)
    for value in [float("nan"), float("inf"), 1, -1e-9]:
        with pytest.raises(ArgumentError, match=r"rel_tol must be a number in \[0, 1\); got"):
            check_range(value, "PyramidSwitch.rel_tol", low=0, high=1, high_open=True)
    for value in [2.0, True, "3"]:
        with pytest.raises(ArgumentError, match="patience must be an integer >= 1"):
            check_range(value, "PyramidSwitch.patience", low=1, integer=True)
