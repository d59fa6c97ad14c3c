#!/usr/bin/env bash
# `framewire bench` on a machine with torch but no network: installs a wheelhouse made by
# scripts/wheelhouse.sh into a private directory (not the machine's site-packages), then
# runs the GPU benchmark of docs/PERFORMANCE.md and writes its output, JSON, plot and a
# worker profile to OUTDIR. Run from the repository root.
#
#   scripts/bench-offline.sh [WHEELS] [OUTDIR]        # default: .whl ${OUT:-bench-out}
#
# The first pass decodes JPEGs where FRAMEWIRE_DECODE_ON says (default auto: on the GPU
# with nvJPEG when torchvision is there, see machine.txt); a second pass with
# FRAMEWIRE_DECODE_ON=cpu writes OUTDIR/decode-cpu/ for comparison (CPU_PASS=0: skip it).
#
# Environment: FRAMES (20000), MAX_BATCH (128), MODEL (resnet50), INPUT_SIZE (224),
# DEVICE (cuda), FRAMEWIRE_DECODE_THREADS (cores - 2), PROFILE (1: py-spy the saturated
# worker; 0: not, for figures untouched by the sampler), CPU_PASS (1).
set -euo pipefail
wheels=${1:-.whl}
out=${2:-${OUT:-bench-out}}
site=${SITE:-/tmp/framewire-site}
mkdir -p "$out" "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$wheels"/*.whl
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PATH="$site/bin:$PATH"
cores=$(nproc)
export FRAMEWIRE_DECODE_THREADS=${FRAMEWIRE_DECODE_THREADS:-$(( cores > 3 ? cores - 2 : 1 ))}
export FRAMEWIRE_STATE_DIR=${FRAMEWIRE_STATE_DIR:-/tmp/framewire-state}
{
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    python3 -c 'import torchvision; print("torchvision", torchvision.__version__)' 2>/dev/null \
        || echo "torchvision: cannot be imported (JPEG decode on the CPU)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    echo "cores $cores, decode threads $FRAMEWIRE_DECODE_THREADS"
} | tee "$out/machine.txt"

bench() {  # one run; its output, JSON, plot and worker profile in the folder $1
    local dir=$1 profile=()
    mkdir -p "$dir"
    [ "${PROFILE:-1}" = 1 ] && profile=(--profile "$dir/worker-profile.txt")
    python3 -m framewire bench --device "${DEVICE:-cuda}" --model "${MODEL:-resnet50}" \
        --input-size "${INPUT_SIZE:-224}" --frame-size 640x480 --max-batch "${MAX_BATCH:-128}" \
        --frames "${FRAMES:-20000}" --json --plot "$dir/performance.png" "${profile[@]}" \
        2>&1 | tee "$dir/bench.txt"
    tail -n 1 "$dir/bench.txt" > "$dir/bench.json"
}

bench "$out"
if [ "${CPU_PASS:-1}" = 1 ] && [ "${FRAMEWIRE_DECODE_ON:-auto}" != cpu ]; then
    FRAMEWIRE_DECODE_ON=cpu bench "$out/decode-cpu"
fi
