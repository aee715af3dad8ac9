"""The two photo sets of the quality benchmarks: one to tune on, one to report.

    python benchmarks/photos.py validation --size 256      # prints the folder it wrote

Defaults are tuned on ``TUNING`` only; every number in RESULTS.md and the README comes from
``VALIDATION``. Both mix skies, foliage, night scenes, faces or people, objects and text, from
three sources that install offline: scikit-image's photographs (a dependency), scikit-learn's two
sample photographs (its wheel is downloaded, not installed) and the nature photographs of Debian's
``mate-backgrounds`` (downloaded with ``apt-get download``, unpacked with ``dpkg -x``). Downloads
are cached under ``$XDG_CACHE_HOME/slp_lightning`` (default ``~/.cache/slp_lightning``). Tests
never call this: it fetches packages.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

# name -> source. ``skimage:NAME`` is ``skimage.data.NAME()``; ``sklearn:FILE`` a sample photo of
# scikit-learn's wheel; ``mate:PATH`` a file under /usr/share/backgrounds/mate of mate-backgrounds.
TUNING = {
    "dune": "mate:nature/Dune.jpg",  # sky over grass
    "raindrops": "mate:nature/RainDrops.jpg",  # foliage
    "grass": "skimage:grass",  # foliage texture
    "moon": "skimage:moon",  # night, grey
    "camera": "skimage:camera",  # a person
    "chelsea": "skimage:chelsea",  # an animal's face
    "garden": "mate:nature/Garden.jpg",  # a flower
    "freshflower": "mate:nature/FreshFlower.jpg",
    "twowings": "mate:nature/TwoWings.jpg",
    "clock": "skimage:clock",  # an object
    "text": "skimage:text",  # handwriting
    "aqua": "mate:nature/Aqua.jpg",  # water
    "gravel": "skimage:gravel",
    "brick": "skimage:brick",
    "retina": "skimage:retina",
    "flower": "sklearn:flower.jpg",
}
VALIDATION = {
    "storm": "mate:nature/Storm.jpg",  # sky
    "blinds": "mate:nature/Blinds.jpg",  # foliage (a leaf)
    "greenmeadow": "mate:nature/GreenMeadow.jpg",  # foliage (grass)
    "hubble": "skimage:hubble_deep_field",  # night sky
    "rocket": "skimage:rocket",  # night scene
    "astronaut": "skimage:astronaut",  # a face
    "coffee": "skimage:coffee",  # an object
    "ladybird": "mate:nature/LadyBird.jpg",
    "yellowflower": "mate:nature/YellowFlower.jpg",
    "page": "skimage:page",  # printed text
    "motorcycle": "skimage:motorcycle",
    "coins": "skimage:coins",
    "china": "sklearn:china.jpg",  # a building
    "wood": "mate:nature/Wood.jpg",
    "cells": "skimage:immunohistochemistry",
    "elephants": "mate:abstract/Elephants.jpg",  # a painting
}
SETS = {"tuning": TUNING, "validation": VALIDATION}


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slp_lightning"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _mate_root() -> Path:
    root = cache_dir() / "mate-backgrounds"
    if not root.exists():
        with tempfile.TemporaryDirectory() as work:
            subprocess.run(["apt-get", "download", "mate-backgrounds"], cwd=work, check=True,
                           capture_output=True)  # fmt: skip
            deb = next(Path(work).glob("mate-backgrounds_*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root / "usr" / "share" / "backgrounds" / "mate"


def _sklearn_images() -> Path:
    root = cache_dir() / "sklearn-images"
    if not root.exists():
        with tempfile.TemporaryDirectory() as work:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "scikit-learn", "-d", work], check=True, capture_output=True)  # fmt: skip
            with zipfile.ZipFile(next(Path(work).glob("scikit_learn-*.whl"))) as wheel:
                for member in wheel.namelist():
                    if member.startswith("sklearn/datasets/images/") and member.endswith(".jpg"):
                        root.mkdir(parents=True, exist_ok=True)
                        (root / Path(member).name).write_bytes(wheel.read(member))
    return root


def read(source: str) -> Image.Image:
    """The photograph ``source`` names, as RGB."""
    kind, _, name = source.partition(":")
    if kind == "skimage":
        import skimage.data

        loader = {"motorcycle": lambda: skimage.data.stereo_motorcycle()[0]}.get(
            name, getattr(skimage.data, name, None)
        )
        return Image.fromarray(np.asarray(loader())).convert("RGB")
    path = {"sklearn": _sklearn_images, "mate": _mate_root}[kind]() / name
    return Image.open(path).convert("RGB")


def first_photos(name: str, count: int | None, scratch: Path) -> tuple[Path, list[Path]]:
    """The set's folder and its PNGs, or, with ``count``, a folder in ``scratch`` of links to its
    first ``count`` photographs."""
    folder = photo_set(name)
    pngs = sorted(folder.glob("*.png"))[:count]
    if count:
        folder = scratch / name
        folder.mkdir()
        for png in pngs:
            (folder / png.name).symlink_to(png)
    return folder, pngs


def photo_set(name: str, size: int = 256) -> Path:
    """A folder of the set's photographs as PNGs, short side resized to ``size`` and centre-cropped
    to a square (written once, then reused)."""
    folder = cache_dir() / f"{name}_{size}"
    sources = SETS[name]
    if folder.exists() and len(list(folder.glob("*.png"))) == len(sources):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for stem, source in sources.items():
        image = read(source)
        scale = size / min(image.size)
        image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                             Image.Resampling.LANCZOS)  # fmt: skip
        left, top = (image.width - size) // 2, (image.height - size) // 2
        image.crop((left, top, left + size, top + size)).save(folder / f"{stem}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    print(photo_set(args.set, args.size))


if __name__ == "__main__":
    main()
