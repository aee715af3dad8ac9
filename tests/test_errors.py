import subprocess
import sys

import pytest

from slp_lightning.cli import flag
from slp_lightning.errors import ArgumentError
from slp_lightning.exits import errors_as_one_line


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
        "import sys, slp_lightning, slp_lightning.pyramid, slp_lightning.objective, slp_lightning.methods;"
        "print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith('lightning.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
