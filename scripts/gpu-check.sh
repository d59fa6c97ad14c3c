#!/usr/bin/env bash
# The checks only a CUDA machine can make, in one step, on a machine with torch but no
# network (like scripts/bench-offline.sh): a model swap on a CUDA worker while frames flow
# (scripts/gpu_swap_check.py), and `framewire train` on CUDA (mixed precision) through
# MLflow tracking and the registry. Writes swap.json, train.json and logs to OUTDIR.
#
#   scripts/wheelhouse.sh .whl 3.12 && scripts/wheelhouse.sh --mlops .whl-mlops 3.12   # here
#   scripts/gpu-check.sh .whl .whl-mlops OUTDIR                                      # there
set -euo pipefail
wheels=${1:-.whl}
mlops_wheels=${2:-.whl-mlops}
out=${3:-${OUT:-gpu-check-out}}
site=${SITE:-/tmp/framewire-site}
mkdir -p "$out" "$site"
extra=()  # the MLflow client's wheels of packages the first wheelhouse does not hold
for wheel in "$mlops_wheels"/*.whl; do
    name=$(basename "$wheel" | cut -d- -f1)
    compgen -G "$wheels/$name-*.whl" > /dev/null || extra+=("$wheel")
done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$wheels"/*.whl "${extra[@]}"
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PATH="$site/bin:$PATH"
export FRAMEWIRE_STATE_DIR=${FRAMEWIRE_STATE_DIR:-/tmp/framewire-gpu-check}
device=${DEVICE:-cuda}

python3 scripts/gpu_swap_check.py --device "$device" --fps "${FPS:-400}" \
    --seconds "${SECONDS_OF_FRAMES:-10}" 2> "$out/swap.log" | tee "$out/swap.json"

# A labelled synthetic dataset, imported, then trained on the device.
python3 - "$FRAMEWIRE_STATE_DIR/shapes" <<'PY'
import sys
from pathlib import Path

import cv2

from producers.synthetic import synthetic_dataset

root = Path(sys.argv[1])
images, labels = synthetic_dataset(1800, seed=3, width=96, height=96)
for i, (image, label) in enumerate(zip(images, labels, strict=True)):
    (root / label).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / label / f"{i:05d}.png"), image)
PY
python3 -m framewire data import "$FRAMEWIRE_STATE_DIR/shapes" --name shapes > "$out/train.log" 2>&1
python3 -m framewire train --dataset shapes --arch "${ARCH:-resnet18}" --input-size 64 \
    --epochs "${EPOCHS:-4}" --device "$device" --json 2>> "$out/train.log" | tail -n 1 \
    | tee "$out/train.json"
