#!/usr/bin/env bash
# The GPU runbook (../shared/GPU.md) in one command, on a machine with an NVIDIA GPU:
#   scripts/gpu_run.sh OUTDIR [--smoke]
# Prepared here by scripts/prepare_gpu_run.sh (the travelling data, wheels and starting weights).
# 1. trains several runs at once, side by side on the one GPU, with the production recipe and
#    data (Kvasir-SEG train880 + PolypGen train, polyp-free frames and background crops, the
#    false-alarm term; validation as on the CPU): by default a learning-rate sweep of the design
#    card's networks, afresh or from the installed weights (a warm restart); RUNS replaces it.
#    Each run's best epoch comes home as a slim checkpoint (fp16 network, no optimiser, NAME.pt)
#    to be exported and calibrated here, on the original data (`training.export CKPT --name M
#    --calibrate --data-root ../shared/data`); at most six runs, so that everything comes back;
# 2. checks the GPU backends against the torch fp32 reference and times a 1080p frame through
#    each, stage by stage (scripts/gpu_backends.py), on the installed weights that travelled;
# 3. measures batch-1 inference on the GPU per execution variant (scripts/gpu_bench.py);
# 4. runs the live pipeline benchmark on a synthetic 1080p60 source (`polypview bench pipeline`).
# A step that fails or runs out of time is logged and the next one runs. What is worth keeping
# lands in OUTDIR as at most 8 files: the slim checkpoints, results.tar.gz (logs, learning curves,
# benchmarks) and gpu_run.log. --smoke runs every step with tiny budgets, so the script can be
# tried end to end on a CPU. Budgets (minutes) can be set with BUDGET_TRAIN, BUDGET_BACKENDS,
# BUDGET_BENCH and BUDGET_PIPELINE; the defaults (9 min in all) fit one 10-minute device call.
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
data=.cache/gpu-data
starts=.cache/gpu-init
if [ ! -d "$data/kvasir-seg" ] && [ -f "$data.tar.gz" ]; then  # travels as one file: lighter
    tar -xzf "$data.tar.gz" -C "$work" && data=$work/gpu-data
fi
[ -d "$data/kvasir-seg" ] || { say "no $data: run scripts/prepare_gpu_run.sh first"; exit 2; }
say "data: $data; starting weights: $starts; work: $work"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || say "no nvidia-smi"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ "$mode" = --smoke ]; then
    train_options=(--size 64 --epochs 2 --max-steps 3 --batch-size 4 --background-crops 8)
    budgets=(2 1 1 1) bench_options=(--runs 5 --warmup 2 --images 2)
    backend_options=(--images 2 --runs 2) pipeline_options=(synthetic:320x180@30 3)
else
    train_options=(--size 256 --epochs 300 --batch-size 32 --patience 60 --background-crops 400)
    budgets=("${BUDGET_TRAIN:-7.25}" "${BUDGET_BACKENDS:-0.5}" "${BUDGET_BENCH:-0.75}"
        "${BUDGET_PIPELINE:-0.5}")
    bench_options=(--runs 200 --warmup 30 --images 30)
    backend_options=(--images 120 --runs 20) pipeline_options=(synthetic:1920x1080@60 20)
fi

# The production recipe of the CPU runs (docs/training.md), with the strong augmentation that
# many epochs can afford. Each run: NAME MODEL OPTIONS... (its start and learning rate); RUNS, one
# run per line, replaces the list. The default is what the second GPU run asked for
# (docs/gpu.md): ResUNet++ afresh with the paper's sigmoid attention gate at two rates, beside
# the reference gate at the same rate, and ResUNet continuing from its installed weights.
# Every run also gets synthetic on-screen text on 30% of its frames (training.overlays).
recipe=(--data "$data/kvasir-seg" --extra "$data/polypgen:train:val"
    --extra "$data/polypgen-negative:train:val" --false-alarm-weight 1 --augment strong
    --overlays 0.3 "${train_options[@]}")
default_runs="resunetpp-sigmoid-3e-4 resunetpp --attention-gate sigmoid --lr 3e-4 --warmup-epochs 1
resunetpp-sigmoid-1e-3 resunetpp --attention-gate sigmoid --lr 1e-3 --warmup-epochs 1
resunetpp-reference-3e-4 resunetpp --lr 3e-4 --warmup-epochs 1
resunet-init-3e-4 resunet --init $starts/resunet.safetensors --lr 3e-4 --warmup-epochs 0.5"
mapfile -t run_lines <<< "${RUNS:-$default_runs}"
threads=$(( $(nproc) / ${#run_lines[@]} ))
train() {  # train NAME MODEL OPTIONS...: one run; its loop stops itself before the step's budget
    local name=$1 model=$2
    shift 2
    OMP_NUM_THREADS=$(( threads > 0 ? threads : 1 )) exec "$python" -m training.train \
        --model "$model" "${recipe[@]}" "$@" \
        --time-budget "$(awk "BEGIN{print ${budgets[0]} - 0.5}")" \
        --out "$work/runs/$name" --cache-dir "$work/cache/$name" > "$work/runs/$name.log" 2>&1
}
mkdir -p "$work/runs"
say "== train ${#run_lines[@]} runs side by side (budget ${budgets[0]} min)"
pids=()
for line in "${run_lines[@]}"; do
    # shellcheck disable=SC2086  # a run line is words
    timeout --signal=INT --kill-after=20 "$(awk "BEGIN{print int(${budgets[0]}*60)}")" \
        bash -c "$(declare -p python recipe budgets work threads); $(declare -f train); train $line" &
    pids+=($!)
done
wait "${pids[@]}"  # a bare wait would also wait for the log's tee
for line in "${run_lines[@]}"; do
    name=${line%% *}
    say "-- $name ($line): $(grep -c '^epoch ' "$work/runs/$name.log") epochs"
    grep -E '^(time budget|\{)|Error|error' "$work/runs/$name.log" | tail -n 4
    [ -f "$work/runs/$name/best.pt" ] && "$python" -m training.export "$work/runs/$name/best.pt" \
        --slim "$out/$name.pt"
done

# The app's GPU backends: parity of each model on test120, the default's 1080p frame figures.
# On the installed weights that travelled: the new ones are exported on the CPU machine.
step "GPU backends: parity on test120, 1080p frame" "${budgets[1]}" "$python" scripts/gpu_backends.py \
    --models-dir "$starts" --models resunetpp resunet --data "$data/kvasir-seg" \
    --json "$work/gpu_backends.json" "${backend_options[@]}"

step "inference benchmark" "${budgets[2]}" "$python" scripts/gpu_bench.py --models-dir "$starts" \
    --models resunetpp resunet --data "$data/kvasir-seg" --json "$work/inference.json" \
    "${bench_options[@]}"

# The live pipeline as the app runs it (no PyAV here, so no recording): 1080p60 synthetic input,
# the default model on the backend auto picks; the JSON summary is the last line.
step "live pipeline ${pipeline_options[0]}" "${budgets[3]}" env POLYPVIEW_MODELS="$starts" \
    bash -o pipefail -c '"$0" -m polypview bench pipeline --source "$1" --duration "$2" --json | tee "$3"' \
    "$python" "${pipeline_options[@]}" "$work/pipeline.txt"

say "== collecting results"
tar -czf "$out/results.tar.gz" -C "$work" --exclude='*.pt' --exclude='*.ep' --exclude='*.safetensors' \
    --exclude=cache --exclude=.cache --exclude=gpu-data . && say "results.tar.gz: $(du -h "$out/results.tar.gz" | cut -f1)"
ls -la "$out"
