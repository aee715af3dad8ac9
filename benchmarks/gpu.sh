#!/usr/bin/env bash
# Everything a lent GPU machine runs, in one call (RESULTS.md records what it printed):
#   1. the CUDA tests; 2. throughput by precision and batch (alone on the GPU, so its timings
#   hold); 3. the trained-network quality grid on the validation photographs, at 224 and 128 px,
#   its 18 budget × method × size pieces as parallel processes (the GPU has room for them all).
# Needs the validation photographs under $XDG_CACHE_HOME/slp_lightning (benchmarks/photos.py) and
# CRAFT's weights (the `trained` extra). Results go to $OUT (default /tmp/gpu_out).
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SLP_LIGHTNING_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"

timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_dsift.py -k cuda 2>&1 | tail -2

timeout "${THROUGHPUT_S:-170}" python3 benchmarks/throughput.py --cells alexnet_conv5 craft_relu3_3 \
    --batches 8 64 256 --steps 30 --out "$OUT/throughput.json" 2>&1 | grep -E '^(\||NVIDIA|Trace|[A-Za-z]*Error)'

grid() {  # size, then seconds allowed; one thread each: 18 processes share 16 cores
    OMP_NUM_THREADS=1 timeout "$2" python3 benchmarks/quality.py --set validation --size "$1" --parallel 9 \
        --layers relu1_2 relu2_2 relu3_3 relu4_3 relu5_2 --budgets 200 500 1000 --out "/tmp/q$1" \
        > "$OUT/quality_$1.md" 2> "/tmp/q$1.err"
    echo "quality $1 px: exit $?"; tail -3 "/tmp/q$1.err"
    cp "/tmp/q$1/rows.jsonl" "$OUT/quality_${1}_rows.jsonl" 2>/dev/null
}
grid 224 "${GRID_S:-300}" &
grid 128 "${GRID_S:-300}" &
wait
cat "$OUT"/quality_*.md
