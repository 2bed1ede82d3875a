#!/usr/bin/env bash
# Before a GPU run, on the development machine: build what must travel with the code.
#   scripts/prepare_gpu_run.sh
# Then, with the device tool: run `bash scripts/gpu_run.sh $OUT` with carry [".cache/kvasir-320", ".whl"].
# Both folders are git-ignored; together about 40 MiB of the 64 MiB a run may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
# Kvasir-SEG resized to 320x320 (JPEG q95 + PNG masks + split files): about 33 MiB.
"$python" -m training.data --root ../shared/data/kvasir-seg --size 320 --out .cache/kvasir-320
# kornia is not installed on the GPU machine and it has no network: its wheels for Python 3.12.
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl kornia==0.9.0 kornia_rs==0.2.0
du -sh .cache/kvasir-320 .whl
