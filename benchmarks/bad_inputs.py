"""Bad inputs: run the command line on each family of bad data and bad files and say whether it
refuses them as a user error should: one line on stderr and exit 2, before any step.

    python benchmarks/bad_inputs.py --quick   # one case per family
    python benchmarks/bad_inputs.py           # every case

Each case writes its files into a temporary folder and runs ``python -m slp_lightning fit`` (a
random AlexNet conv5 at 32 px, K = 3, 2 steps, offline) with its arguments. Verdicts: ``ok`` (one
``error:`` line, exit 2, no step taken), ``late`` (the same after steps ran: a checkpoint was
written), ``poor`` (a traceback, or no such line), ``runs`` (the bad input was taken: exit 0),
``skipped`` (this machine cannot make the case); for the cases whose right answer is to run (a
clash of names, a default evaluator that is not installed): ``kept`` (exit 0, and every target's
result is there) or ``lost`` (exit 0, a result missing or overwritten). ``benchmarks/faults.py`` is the other
fault script: it kills runs and resumes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import alexnet

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
from helpers import PHOTOS, png_claiming  # noqa: E402  (the tests' photographs and bomb PNG)

ARGS = [
    "fit", "--model.weights=random", "--model.image_size=32", "--model.pyramid_levels=3",
    "--trainer.max_steps=2", "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]  # fmt: skip
FEATURE_SHAPE = (256, 1, 1)  # alexnet conv5 at 32 px
PROC = "/proc/slp_lightning_logs"  # Linux makes nothing in /proc, whoever asks
TRACEBACK = "Traceback (most recent call last)"
SKIP = "skip"  # what a case's ``make`` returns when this machine cannot make it


@dataclass
class Case:
    """A bad input: ``make(folder)`` writes its files and returns its arguments (or ``SKIP``)."""

    name: str
    make: Callable[[Path], list[str] | str]
    quick: bool = True  # one case per family is quick
    shadow: str | None = None  # run as if this package were not installed
    # For a case whose right answer is to run: whether the run kept every result (its folder).
    kept: Callable[[Path], bool] | None = None


@dataclass
class Row:
    case: str
    code: int | None
    message: str
    verdict: str


def _photo(folder: Path, name: str = "coffee") -> Path:
    path = folder / f"{name}.png"
    Image.fromarray(PHOTOS[name]()).resize((48, 32)).save(path)
    return path


def _float_tiff(value: float) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        pixels = np.full((32, 32), 0.5, dtype=np.float32)
        pixels[3, 4] = value
        Image.fromarray(pixels, mode="F").save(folder / "float.tif")
        return [f"--data.images={folder / 'float.tif'}"]

    return make


def _features_file(path: Path) -> list[str]:
    return ["--data.images=", f"--data.features={path}"]  # features alone, no images


def _features(name: str, values: np.ndarray | torch.Tensor) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        path = folder / name
        if isinstance(values, torch.Tensor):
            torch.save(values, path)
        else:
            np.save(path, values)
        return _features_file(path)

    return make


def _with_nan(shape: tuple[int, ...], value: float = float("nan")) -> torch.Tensor:
    features = torch.rand(shape)
    features.view(-1)[0] = value
    return features


def _file(name: str, content: bytes, option: str) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        (folder / name).write_bytes(content)
        return (
            _features_file(folder / name)
            if option == "data.features"
            else [f"--{option}={folder / name}"]
        )

    return make


def _safetensors(folder: Path) -> list[str]:
    from safetensors.torch import save_file

    save_file({"a": torch.rand(FEATURE_SHAPE)}, folder / "f.safetensors")
    return _features_file(folder / "f.safetensors")


def _nan_weights(folder: Path) -> list[str]:
    torch.manual_seed(0)
    state = {k: v for k, v in alexnet().state_dict().items() if k.startswith("features.")}
    state["features.3.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, folder / "nan.pth")
    return [f"--model.weights={folder / 'nan.pth'}"]


def _name_clash(folder: Path) -> list[str]:
    images = folder / "clash"
    images.mkdir()
    for name, suffix in [("coffee", "a.jpg"), ("astronaut", "a.png"), ("chelsea", "a_2.png")]:
        _photo(images, name).rename(images / suffix)
    return [f"--data.images={images}"]


def _three_distinct_results(folder: Path) -> bool:
    """Three names in results.json, and three different final PNGs."""
    (results,) = folder.rglob("results.json")
    names = {image["name"] for image in json.loads(results.read_text())["images"]}
    pngs = [p for p in (results.parent / "reconstructions").glob("*.png") if "_level" not in p.name]
    return len(names) == 3 and len({p.read_bytes() for p in pngs}) == 3


def _features_keys(keys: list[object]) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        torch.save({key: torch.rand(FEATURE_SHAPE) for key in keys}, folder / "keys.pt")
        return _features_file(folder / "keys.pt")

    return make


def _nan_factory(folder: Path) -> list[str]:
    (folder / "broken.py").write_text(
        "import torch\nfrom torch import nn\n\n\ndef broken():\n"
        "    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
        "    net[0].weight.data[0] = float('nan')\n    return net\n"
    )
    return [
        f"--model.network={folder / 'broken.py'}:broken",
        "--model.layer=1",
        "--model.weights=auto",
    ]  # its own


MOBILENET = ["--model.network=torchvision", "--model.arch=mobilenet_v2", "--model.layer=features.2"]


def _has_results(folder: Path) -> bool:
    return any(folder.rglob("results.json"))


def _two_identical(folder: Path) -> list[str]:
    images = folder / "same"
    images.mkdir()
    for name in ("a", "b"):
        _photo(images).rename(images / f"{name}.png")
    return [f"--data.images={images}"]


def _read_only_root(folder: Path) -> list[str] | str:
    if os.geteuid() == 0:
        return SKIP  # root writes whatever the modes say
    root = folder / "read_only"
    root.mkdir(mode=0o555)
    return [f"--trainer.default_root_dir={root}"]


def _root_is_a_file(folder: Path) -> list[str]:
    (folder / "logs").write_text("a file")
    return [f"--trainer.default_root_dir={folder / 'logs'}"]


NOT_SAFETENSORS = b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}..."
CASES = [
    Case("missing image folder", lambda f: [f"--data.images={f / 'nowhere'}/"]),
    Case("NaN pixel (float TIFF)", _float_tiff(float("nan"))),
    Case("+Inf pixel (float TIFF)", _float_tiff(float("inf")), quick=False),
    Case("-Inf pixel (float TIFF)", _float_tiff(float("-inf")), quick=False),
    Case("decompression bomb (200 Mpx PNG)", _file("bomb.png", png_claiming(20_000, 10_000), "data.images")),
    Case("over the warning limit (100 Mpx)", _file("big.png", png_claiming(10**4, 10**4), "data.images"), quick=False),
    Case("NaN features (.pt)", _features("nan.pt", _with_nan((2, *FEATURE_SHAPE)))),
    Case("Inf features (.npy)", _features("inf.npy", _with_nan((2, *FEATURE_SHAPE), np.inf).numpy()), quick=False),
    Case("features with zero rows (.npy)", _features("zero.npy", np.zeros((0, *FEATURE_SHAPE), np.float32))),
    Case("features with zero rows (.pt)", _features("zero.pt", torch.zeros(0, *FEATURE_SHAPE)), quick=False),
    Case("empty .npy file (0 bytes)", _file("empty.npy", b"", "data.features")),
    Case("empty .npy array (shape (0,))", _features("flat.npy", np.zeros(0, np.float32)), quick=False),
    Case("0-d .npy array", _features("scalar.npy", np.float32(1)), quick=False),
    Case("garbage .safetensors", _file("garbage.safetensors", NOT_SAFETENSORS, "data.features")),
    Case(".safetensors without the package", _safetensors, shadow="safetensors"),
    Case("NaN weights (state dict)", _nan_weights),
    Case("corrupt checkpoint", _file("corrupt.ckpt", b"PK\x03\x04 not a zip", "ckpt_path")),
    Case("two identical targets (N_f = 0)", _two_identical),
    Case("read-only output root", _read_only_root),
    Case("output root is a file", _root_is_a_file),
    Case("output root in /proc (nothing can be made)", lambda _: [f"--trainer.default_root_dir={PROC}"], quick=False),
    Case("a.jpg, a.png and a_2.png (a clash of names)", _name_clash, kept=_three_distinct_results),
    Case("features keys 1 and '1'", _features_keys([1, "1"])),
    Case("features keys 'a' and 'a '", _features_keys(["a", "a "]), quick=False),
    Case("NaN weight of a model from a factory", _nan_factory),
    Case("--model.image_size 0", lambda _: ["--model.image_size=0"]),
    Case("--model.n_f 0", lambda _: ["--model.n_f=0"], quick=False),
    Case("--model.compactness .nan", lambda _: ["--model.compactness=.nan"], quick=False),
    Case("--switch.final_patience 0", lambda _: ["--switch.final_patience=0"], quick=False),
    Case("--data.chunk_size 0", lambda _: ["--data.chunk_size=0"], quick=False),
    Case("--model.optimizer.lr 0", lambda _: ["--model.optimizer=torch.optim.Adam", "--model.optimizer.lr=0"],
         quick=False),
    Case("--trainer.accumulate_grad_batches 2", lambda _: ["--trainer.accumulate_grad_batches=2"], quick=False),
    Case("named evaluator not installed", lambda _: [*MOBILENET, "--eval.classifier=efficientnet_lite0"],
         shadow="efficientnet_lite_pytorch"),
    Case("default evaluator (auto) not installed", lambda _: [*MOBILENET, "--eval.classifier=auto"],
         shadow="efficientnet_lite_pytorch", kept=_has_results),
]  # fmt: skip


def _shadow(folder: Path, name: str) -> Path:
    """A folder whose package ``name`` fails to import as a missing package does."""
    package = folder / "shadow" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n"
    )
    return package.parent


def verdict(code: int, stderr: str, stepped: bool) -> str:
    """``ok`` when the run ends on one ``error:`` line, exit 2 (Lightning's start-up lines, such
    as ``Seed set to 0``, may come before it) and before any step (``stepped``: a checkpoint
    was written); ``late`` when it ends so only after steps ran."""
    lines = stderr.strip().splitlines()
    if code == 0:
        return "runs"
    errors = [line for line in lines if line.startswith("error: ")]
    if code == 2 and TRACEBACK not in stderr and errors == lines[-1:]:
        return "late" if stepped else "ok"
    return "poor"


def message(stderr: str) -> str:
    """What the user reads: the ``error:`` line, else the last line (a traceback's exception)."""
    lines = stderr.strip().splitlines()
    return next((line for line in lines if line.startswith("error: ")), lines[-1] if lines else "")


def run(case: Case, folder: Path) -> Row:
    """Make ``case`` in ``folder`` and run the command line on it."""
    folder.mkdir()
    made = case.make(folder)
    if made == SKIP:
        return Row(case.name, None, "(running as root: file modes do not bind)", "skipped")
    paths = [str(_shadow(folder, case.shadow))] if case.shadow else []
    env = {
        **os.environ, "SLP_LIGHTNING_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)]),
    }  # fmt: skip
    args = [
        *ARGS,
        f"--trainer.default_root_dir={folder / 'logs'}",
        f"--data.images={_photo(folder)}",
        *made,
    ]
    done = subprocess.run(
        [sys.executable, "-m", "slp_lightning", *args],
        capture_output=True, text=True, cwd=folder, env=env, timeout=300,
    )  # fmt: skip
    shown = message(done.stderr).replace(str(folder), "$CASE")  # the case's temporary folder
    stepped = any(p.parent.name == "checkpoints" for p in folder.rglob("*.ckpt"))
    judged = verdict(done.returncode, done.stderr, stepped)
    if case.kept is not None and judged == "runs":
        judged = "kept" if case.kept(folder / "logs") else "lost"
    return Row(case.name, done.returncode, shown, judged)


def table(rows: list[Row], width: int = 140) -> str:
    lines = [
        "| case | exit | stderr: its error line, else its last | verdict |",
        "|---|---|---|---|",
    ]
    for r in rows:
        shown = r.message if len(r.message) <= width else r.message[: width - 1] + "…"
        shown = shown.replace("|", "\\|")
        lines.append(f"| {r.case} | {'' if r.code is None else r.code} | `{shown}` | {r.verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one case per family")
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i, case in enumerate(c for c in CASES if c.quick or not options.quick):
            rows.append(run(case, Path(folder) / str(i)))
            print(f"{case.name}: {rows[-1].verdict}", file=sys.stderr, flush=True)
    print(table(rows))
    counts = {
        v: sum(r.verdict == v for r in rows)
        for v in ("ok", "kept", "late", "poor", "runs", "lost", "skipped")
    }
    print("\n" + ", ".join(f"{n} {v}" for v, n in counts.items() if n))


if __name__ == "__main__":
    main()
