#!/usr/bin/env bash
# Before a GPU run, on the development machine: build what must travel with the code.
#   scripts/prepare_gpu_run.sh
# Then move the tracked models/*.safetensors out of the tree for the call (the tree travels, and
# 64 MiB is all a call may carry), run `bash scripts/gpu_run.sh $OUT` with the device tool and
# carry [".cache/gpu-data.tar.gz", ".cache/gpu-init", ".whl"], and put the weights back. All
# three are git-ignored; with the tree they come to about 57 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
shared=../shared/data
# The training data at the training size, JPEG quality 80: Kvasir-SEG (test120 too, for the
# benchmarks' mask agreement), PolypGen without its test split (scored here, on the originals),
# the polyp-free frames. Built afresh: files left from an earlier copy would travel too.
rm -rf .cache/gpu-data .cache/gpu-data.tar.gz .cache/gpu-init
"$python" -m training.data --root "$shared/kvasir-seg" --size 256 --quality 80 --keep-original '' \
    --out .cache/gpu-data/kvasir-seg
"$python" -m training.data --root "$shared/polypgen" --size 256 --quality 80 --keep-original '' \
    --leave-out test --out .cache/gpu-data/polypgen
"$python" -m training.data --root "$shared/polypgen-negative" --size 256 --quality 80 \
    --keep-original '' --out .cache/gpu-data/polypgen-negative
# Thousands of small files travel heavier than one archive of them: about 27 MiB.
tar -czf .cache/gpu-data.tar.gz -C .cache gpu-data
# The installed weights the benchmarks time and the warm restarts start from: ResUNet++ and
# ResUNet (UNet's would not fit under the 64 MiB; it sits at its plateau, docs/gpu.md).
mkdir -p .cache/gpu-init
for model in resunetpp resunet; do
    cp "models/$model.safetensors" "models/$model.json" .cache/gpu-init/
done
# kornia is not installed on the GPU machine and it has no network: its wheels for Python 3.12.
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl kornia==0.9.0 kornia_rs==0.2.0
du -sh .cache/gpu-data.tar.gz .cache/gpu-init .whl
