"""How much top-1 agreement can a reconstruction keep at all? The semantic score's reference points.

    python benchmarks/semantic_ceiling.py --quick                   # 4 validation photos, 128 px
    python benchmarks/semantic_ceiling.py --set validation --size 224 --figure ceiling.png

The semantic score (README, Evaluation) asks whether an independent classifier (EfficientNet-Lite0)
still gives a reconstruction its target's top-1 class. This prints, for the same photographs and
evaluator, the score of images that are *not* reconstructions, as reference points for the
issue's shares (80 % at the middle depths, 50 % at the deepest):

- **the target degraded** by Gaussian noise at a given PSNR and by a Gaussian blur: how much of the
  class survives a copy of the photograph as far from it in pixels as a reconstruction is;
- **the target's class by the inverted network itself** (MobileNetV2): a reconstruction matching
  MobileNetV2's logits exactly still disagrees with the evaluator wherever the two classifiers
  disagree on the photograph;
- **how sure the evaluator is** of each target's class: a photograph without an ImageNet object
  (a sky, a wall of text) has a top-1 class of low probability that small changes move.

``--figure PATH`` draws a few photographs as the evaluator sees them degraded, each tile captioned
with its top-1 class (✓: the target's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.transforms.v2.functional import gaussian_blur
from torchvision.utils import make_grid, save_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.photos import SETS, photo_set  # noqa: E402
from slp_lightning.data.images import load_image  # noqa: E402
from slp_lightning.maths.metrics import image_quality  # noqa: E402
from slp_lightning.outputs.evaluators import Evaluator, build_evaluator  # noqa: E402
from slp_lightning.outputs.files import captioned  # noqa: E402
from slp_lightning.outputs.semantic import semantic_scores  # noqa: E402

NOISE_PSNR = (30.0, 25.0, 20.0, 17.0, 14.0, 11.0)  # dB; reconstructions here are at 11-26 dB
BLUR_SIGMA = (1.0, 2.0, 4.0)  # px at the image's size
IMAGENET_CLASSES = 1000  # both classifiers' logits
# The figure's rows, those of the set that are here.
FIGURE_PHOTOS = ("coffee", "motorcycle", "greenmeadow", "page")


def noisy(images: torch.Tensor, psnr: float, generator: torch.Generator) -> torch.Tensor:
    """``images`` plus Gaussian noise of the standard deviation that gives ``psnr`` dB, clipped."""
    std = 10 ** (-psnr / 20)
    return (images + std * torch.randn(images.shape, generator=generator)).clamp(0, 1)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``images`` under a Gaussian blur of ``sigma`` px."""
    size = 2 * round(3 * sigma) + 1
    return gaussian_blur(images, [size, size], [sigma, sigma])


def figure(evaluator: Evaluator, targets: torch.Tensor, names: list[str], path: Path) -> None:
    """``FIGURE_PHOTOS``' rows (else the first photographs): the target, two noise levels and two
    blurs, each captioned with the evaluator's top-1 class of it (✓ where it is the target's)."""
    rows = [names.index(name) for name in FIGURE_PHOTOS if name in names]
    rows = rows or list(range(min(len(FIGURE_PHOTOS), len(names))))  # another set, or --quick
    chosen, generator = targets[rows], torch.Generator().manual_seed(0)
    columns = {
        "target": chosen,
        "noise 25 dB": noisy(chosen, 25.0, generator),
        "noise 20 dB": noisy(chosen, 20.0, generator),
        "blur σ 1 px": blurred(chosen, 1.0),
        "blur σ 2 px": blurred(chosen, 2.0),
    }
    classes = {label: evaluator(images)[0].argmax(1).tolist() for label, images in columns.items()}
    tiles = []
    for row in range(len(rows)):
        for label, images in columns.items():
            index = classes[label][row]
            kept = " ✓" if label != "target" and index == classes["target"][row] else ""
            text = f"{label}\n{evaluator.category(index, IMAGENET_CLASSES)}{kept}"
            tiles.append(captioned(images[row], text, lines=2))
    save_image(make_grid(tiles, nrow=len(columns), padding=4, pad_value=1.0), path)
    print(f"\nfigure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=sorted(SETS), default="validation")
    parser.add_argument("--size", type=int, default=224, help="image side in px")
    parser.add_argument("--quick", action="store_true", help="4 photographs at 128 px")
    parser.add_argument(
        "--figure", type=Path, default=None, help="write the figure here (.png, .jpg)"
    )
    args = parser.parse_args()
    if args.size < 32:
        parser.error(f"--size is the image side in px, at least 32; got {args.size}")
    size = 128 if args.quick else args.size
    paths = sorted(photo_set(args.set).glob("*.png"))[: 4 if args.quick else None]
    names = [path.stem for path in paths]
    targets = torch.stack([load_image(str(path), size) for path in paths])
    evaluator = build_evaluator("efficientnet_lite0")
    inverted = build_evaluator("mobilenet_v2")
    target_logits, _ = evaluator(targets)
    generator = torch.Generator().manual_seed(0)

    def row(label: str, images: torch.Tensor) -> str:
        """A table row: the PSNR of ``images`` and the evaluator's scores of them."""
        psnr = image_quality(images, targets)["psnr"].mean()
        scores = semantic_scores(target_logits, evaluator(images)[0])
        return (
            f"| {label} | {psnr:.1f} dB | {100 * scores['top1_agreement'].mean():.0f} % | "
            f"{100 * scores['top5'].mean():.0f} % |"
        )

    print(f"{args.set} set, {len(names)} photographs, {size} px, evaluator efficientnet_lite0\n")
    print("| image | PSNR | top-1 agreement | top-5 |\n|---|---|---|---|")
    for psnr in NOISE_PSNR:
        print(row(f"target + Gaussian noise at {psnr:g} dB", noisy(targets, psnr, generator)))
    for sigma in BLUR_SIGMA:
        print(row(f"target blurred, σ {sigma:g} px", blurred(targets, sigma)))
    # MobileNetV2's class of the target, scored as a reconstruction's top-1 would be (a class
    # alone has no PSNR and no top-5).
    mobilenet_classes = inverted(targets)[0].argmax(1)
    confidence, classes = target_logits.softmax(1).max(1)
    agreement = (mobilenet_classes == classes).float().mean()
    print(f"| MobileNetV2's top-1 class of the target | – | {100 * agreement:.0f} % | – |")

    print(
        "\n| photograph | evaluator's class of the target | p | MobileNetV2's |\n|---|---|---|---|"
    )
    for name, index, value, other in zip(
        names, classes.tolist(), confidence.tolist(), mobilenet_classes.tolist()
    ):
        same = "same" if other == index else evaluator.category(other, IMAGENET_CLASSES)
        print(f"| {name} | {evaluator.category(index, IMAGENET_CLASSES)} | {value:.2f} | {same} |")
    if args.figure is not None:
        figure(evaluator, targets, names, args.figure)


if __name__ == "__main__":
    main()
