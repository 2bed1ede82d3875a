#!/usr/bin/env bash
# The GPU runbook (../shared/GPU.md) in one command, on a machine with an NVIDIA GPU:
#   scripts/gpu_run.sh OUTDIR [--smoke]
# 1. trains the production weights (ResUNet++, then ResUNet, then UNet) with the real recipe, each
#    within its own time budget, exports them and scores them on test120;
# 2. checks the GPU backends against the torch fp32 reference on test120 and times a 1080p frame
#    through each, stage by stage (scripts/gpu_backends.py);
# 3. measures batch-1 inference on the GPU per execution variant (scripts/gpu_bench.py);
# 4. runs the live pipeline benchmark on a synthetic 1080p60 source (`polypview bench pipeline`).
# A step that fails or runs out of time is logged and the next one runs. What is worth keeping
# lands in OUTDIR as at most 8 files: the three weights, results.tar.gz (cards, logs, learning
# curves, worst cases, benchmark) and gpu_run.log. --smoke runs every step with tiny budgets, so the
# script can be tried end to end on a CPU. Budgets (minutes) can be set with BUDGET_RESUNETPP,
# BUDGET_RESUNET, BUDGET_UNET, BUDGET_BACKENDS, BUDGET_BENCH and BUDGET_PIPELINE; the defaults
# (8.25 min in all) fit one 10-minute device call.
set -uo pipefail
out=${1:?usage: scripts/gpu_run.sh OUTDIR [--smoke]}
mode=${2:-full}
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/gpu_run.XXXXXX)
exec > >(tee -a "$out/gpu_run.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
say() { echo "[$(date +%H:%M:%S)] $*"; }
step() {  # step NAME MINUTES COMMAND...: run it within its budget, never stop the script
    local name=$1 minutes=$2
    shift 2
    say "== $name (budget $minutes min)"
    timeout --signal=INT --kill-after=20 "$(awk "BEGIN{print int($minutes*60)}")" "$@"
    local status=$?
    say "== $name ended with status $status"
}

if ! "$python" -c "import kornia" 2>/dev/null; then  # the GPU machine has no network: carried wheels
    "$python" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
data=.cache/kvasir-320
[ -d "$data" ] || data=../shared/data/kvasir-seg
say "data: $data; work: $work"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || say "no nvidia-smi"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ "$mode" = --smoke ]; then
    train_options=(--size 64 --epochs 2 --max-steps 3 --batch-size 4)
    budgets=(1 1 1 1 1 1) bench_options=(--runs 5 --warmup 2 --images 2)
    backend_options=(--images 2 --runs 2) pipeline_options=(synthetic:320x180@30 3)
else
    train_options=(--size 256 --epochs 300 --batch-size 16 --patience 40 --workers 4)
    budgets=("${BUDGET_RESUNETPP:-4.5}" "${BUDGET_RESUNET:-1}" "${BUDGET_UNET:-1}"
        "${BUDGET_BACKENDS:-0.5}" "${BUDGET_BENCH:-0.75}" "${BUDGET_PIPELINE:-0.5}")
    bench_options=(--runs 200 --warmup 30 --images 30)
    backend_options=(--images 120 --runs 20) pipeline_options=(synthetic:1920x1080@60 20)
fi

index=0
for model in resunetpp resunet unet; do
    minutes=${budgets[$index]}
    index=$((index + 1))
    # The loop stops itself half a minute early, leaving time to export and score the best epoch.
    step "train $model" "$minutes" "$python" -m training.train --model "$model" --data "$data" \
        "${train_options[@]}" --time-budget "$(awk "BEGIN{print $minutes - 0.5}")" \
        --out "$work/runs/$model" --cache-dir "$work/cache" --export "$model" \
        --models-dir "$work/models" --status production
done

# The app's GPU backends: parity of the default model, its 1080p frame figures, then the others'.
step "GPU backends: parity on test120, 1080p frame" "${budgets[3]}" "$python" scripts/gpu_backends.py \
    --models-dir "$work/models" --data "$data" --json "$work/gpu_backends.json" "${backend_options[@]}"

step "inference benchmark" "${budgets[4]}" "$python" scripts/gpu_bench.py --models-dir "$work/models" \
    --data "$data" --json "$work/inference.json" "${bench_options[@]}"

# The live pipeline as the app runs it (no PyAV here, so no recording): 1080p60 synthetic input,
# the newly trained default model on the backend auto picks; the JSON summary is the last line.
step "live pipeline ${pipeline_options[0]}" "${budgets[5]}" env POLYPVIEW_MODELS="$work/models" \
    bash -o pipefail -c '"$0" -m polypview bench pipeline --source "$1" --duration "$2" --json | tee "$3"' \
    "$python" "${pipeline_options[@]}" "$work/pipeline.txt"

say "== collecting results"
cp "$work"/models/*.safetensors "$out"/ 2>/dev/null || say "no weights were exported"
tar -czf "$out/results.tar.gz" -C "$work" --exclude='*.pt' --exclude='*.ep' --exclude='*.safetensors' \
    --exclude=cache --exclude=.cache . && say "results.tar.gz: $(du -h "$out/results.tar.gz" | cut -f1)"
ls -la "$out"
