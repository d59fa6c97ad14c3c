#!/usr/bin/env bash
# `framewire bench` on a machine with torch but no network: installs a wheelhouse made by
# scripts/wheelhouse.sh into a private directory (not the machine's site-packages), then
# runs the GPU benchmark of docs/PERFORMANCE.md and writes its output, JSON, plot and a
# worker profile to OUTDIR. Run from the repository root.
#
#   scripts/bench-offline.sh [WHEELS] [OUTDIR]        # default: .whl ${OUT:-bench-out}
#
# Environment: FRAMES (20000), MAX_BATCH (128), MODEL (resnet50), INPUT_SIZE (224),
# DEVICE (cuda), FRAMEWIRE_DECODE_THREADS (cores - 2), PROFILE (1: py-spy the saturated
# worker; 0: not, for figures untouched by the sampler).
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
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    echo "cores $cores, decode threads $FRAMEWIRE_DECODE_THREADS"
} | tee "$out/machine.txt"
profile=()
[ "${PROFILE:-1}" = 1 ] && profile=(--profile "$out/worker-profile.txt")
python3 -m framewire bench --device "${DEVICE:-cuda}" --model "${MODEL:-resnet50}" \
    --input-size "${INPUT_SIZE:-224}" --frame-size 640x480 --max-batch "${MAX_BATCH:-128}" \
    --frames "${FRAMES:-20000}" --json --plot "$out/performance.png" "${profile[@]}" \
    2>&1 | tee "$out/bench.txt"
tail -n 1 "$out/bench.txt" > "$out/bench.json"
