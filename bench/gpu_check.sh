#!/usr/bin/env bash
# One prepared check on a lent GPU machine, in one device call (bench/README.md gives the call):
# the environment, the step cost, the data path throughput, a 3-method comparison (ResNet-20 on
# generated CIFAR-100-format data: the machine reaches no registry and no dataset) and the queue
# throughput with 1, 2 and 4 workers per GPU.
#
# That machine runs its own image (python3 = Python 3.12, torch 2.11; no pydantic, sqlalchemy, ...):
# the wheels of .whl/ (bench/gpu_wheels.sh, carried with the call) are installed into a folder of
# their own and put on PYTHONPATH with this checkout (bench/carried_wheels.sh). Before any step,
# bench/gpu_preflight.py fails in the first second on a too old torch and, a few seconds later,
# on any import a step needs, listing them all: then nothing else runs.
#
# Every step has its own time limit and goes on after a failure ("failed: ..."); all the steps
# share one budget (BUDGET_S): a step gets at most what is left, and a step with less than 10 s
# left is skipped, so the script, preflight included, ends within BUDGET_S + 10 s (the kill
# margin of a step cut short) whatever happens. ONLY
# reruns some steps (a rerun after a failure, in the same lease).
#
#   bash bench/gpu_check.sh                       # the GPU check (python3, or .venv if built)
#   ONLY="comparison queue" bash bench/gpu_check.sh   # some of: env step_cost throughput
#                                                     #   comparison queue
#   PY=/work/venv312/bin/python SMOKE=1 bash bench/gpu_check.sh   # tiny settings on the CPU
#
# Output: the terminal; with $OUT set also $OUT/gpu_check.log, $OUT/gpu_check_summary.txt (one
# line per step: ok / failed / skipped and its seconds) and $OUT/comparison_runs.tar.gz (the
# comparison's run folders without checkpoints).
set -u

cd "$(dirname "$0")/.." || exit 1
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
SMOKE=${SMOKE:-0}
ONLY=${ONLY:-env step_cost throughput comparison queue}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/samon-gpu-check.XXXXXX")
export PYTHONUNBUFFERED=1

TEE_PID=""
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.log") 2>&1
  TEE_PID=$!
fi
# On exit: remove the scratch folder, and let tee write the log's last lines before the device
# call returns (it ends whatever the command leaves running).
finish() {
  rm -rf "$WORK"
  if [ -n "$TEE_PID" ]; then
    exec 1>&- 2>&-
    wait "$TEE_PID" 2>/dev/null
  fi
}
trap finish EXIT
SUMMARY="${OUT:-$WORK}/gpu_check_summary.txt"
: > "$SUMMARY"

# Full settings for the GPU; SMOKE=1 shrinks every step so that 2 CPU cores run all in ~2 min
# (its budget leaves room for cores that other jobs share: twice that).
if [ "$SMOKE" = 1 ]; then
  DEV=cpu; BUDGET_S=${BUDGET_S:-240}; CMP_MODEL=tiny_resnet
  STEP_ARGS="tiny_resnet --batch-size 16 --steps 1 --repeats 1"
  TP_ARGS="--model tiny_resnet --steps 2 --warmup 1 --repeats 1 --batch-size 32 --no-dataloader
           --aug-batches 1"
  N_TRAIN=256; N_TEST=64
  CMP_SET="--set model=$CMP_MODEL --set epochs=1 --set batch_size=64 --set sharpness_samples=32
           --set sharpness_m=32"
  QL_ARGS="--device cpu --runs 2 --workers-per-device 1,2 --timeout 60"
else
  # Expected on one H100 (not yet measured): ~4 min; the limits add up to more, the budget cuts.
  DEV=cuda; BUDGET_S=${BUDGET_S:-360}; CMP_MODEL=resnet20
  STEP_ARGS="resnet20 wrn16_4 --steps 10 --repeats 5"
  TP_ARGS="--steps 100 --warmup 10 --repeats 3"
  N_TRAIN=10000; N_TEST=2000; CMP_SET="--set epochs=3 --set sharpness_samples=256"
  # 12 small ResNet-20 runs per value (a workshop's size): each value ~15-40 s incl. the
  # workers' torch and CUDA start; a value past 40 s is cut and reported, the rest goes on.
  QL_ARGS="--device cuda --model resnet20 --train-subset 2048 --test-subset 512 --batch-size 128
           --runs 12 --workers-per-device 1,2,4 --timeout 40"
fi
T_BUDGET=$SECONDS

# step NAME SECONDS COMMAND...: run with a time limit (at most what the budget has left); a
# failure is reported, not fatal; the outcome goes to the summary.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - (SECONDS - T_BUDGET)))
  [ "$left" -lt "$limit" ] && limit=$left
  echo
  if [ "$limit" -lt 10 ]; then
    echo "=== $name: skipped, ${left} s of the ${BUDGET_S} s budget left"
    echo "skipped  $name (budget spent)" >> "$SUMMARY"
    return 1
  fi
  echo "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  local took=$((SECONDS - t0)) outcome=ok note=""
  if [ "$rc" -ne 0 ]; then
    outcome=failed note="exit $rc"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then note="time limit ${limit} s"; fi
    echo "failed: $name ($note)"
  fi
  echo "--- $name: ${took} s"
  printf '%-8s %-40s %4d s  %s\n' "$outcome" "$name" "$took" "$note" >> "$SUMMARY"
  [ "$rc" -eq 0 ]
}
wanted() { [[ " $ONLY " == *" $1 "* ]]; }

echo "=== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), SMOKE=$SMOKE, device $DEV," \
     "budget ${BUDGET_S} s, steps: $ONLY"
# The first second: a torch older than the project's oldest tested one stops everything.
"$PY" bench/gpu_preflight.py --torch-only || exit 1
# shellcheck source=bench/carried_wheels.sh
. bench/carried_wheels.sh
carried_wheels "$PY" "$WORK/site" || { echo "gpu_check: installing .whl/ failed"; exit 1; }
"$PY" bench/gpu_preflight.py || exit 1

if wanted env; then
  if [ "$DEV" = cuda ] || command -v nvidia-smi >/dev/null; then
    step "nvidia-smi" 15 nvidia-smi
  fi
  # On the GPU run, no CUDA device means every later step would fail: stop here.
  step "torch and CUDA" 40 "$PY" -c "
import sys, torch
print('python', sys.version.split()[0], '| torch', torch.__version__,
      '| CUDA build', torch.version.cuda)
print('CUDA available:', torch.cuda.is_available(), '| devices:', torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(' ', i, torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
print('bf16 supported:', torch.cuda.is_available() and torch.cuda.is_bf16_supported())
sys.exit(0 if sys.argv[1] == 'cpu' or torch.cuda.is_available() else 'no CUDA device')" "$DEV" \
    || [ "$DEV" = cpu ] || { echo "gpu_check: no CUDA device, the other steps would fail"; exit 1; }
fi

# Step cost: SGD vs SAM-all vs SAM-ON, interleaved (the README's GPU rows).
# shellcheck disable=SC2086  # the argument lists are meant to be split
wanted step_cost && step "step cost" 80 "$PY" bench/step_cost.py $STEP_ARGS --device "$DEV"

# Data path: the on-device loader against the compute limit (and a DataLoader on the GPU).
# shellcheck disable=SC2086
wanted throughput && step "throughput" 70 "$PY" bench/throughput.py --device "$DEV" $TP_ARGS

# A 3-method comparison (SGD, SAM-all, SAM-ON in lockstep) through the real CLI and data path;
# its wall time is the step's time.
if wanted comparison; then
  DATA="$WORK/data"
  step "generate CIFAR-100-format data" 40 "$PY" -c "
import sys; sys.path.insert(0, 'tests')
from support.cifar import write_cifar_like
print(write_cifar_like(sys.argv[1], 'cifar100', n_train=int(sys.argv[2]), n_test=int(sys.argv[3])))
" "$DATA" "$N_TRAIN" "$N_TEST" &&
  # shellcheck disable=SC2086
  step "comparison $CMP_MODEL x 3 methods" 110 env SAMON_DATA_DIR="$DATA" \
    "$PY" -m samon_core run --preset cifar100-resnet20-cpu --runs-dir "$WORK/runs" \
    --progress none --owner gpu-check --set device="$DEV" --set train_subset="$N_TRAIN" \
    --set test_subset="$N_TEST" $CMP_SET
  step "comparison results" 15 "$PY" -m samon_core list --runs-dir "$WORK/runs"
  if [ -n "${OUT:-}" ] && [ -d "$WORK/runs" ]; then
    tar -czf "$OUT/comparison_runs.tar.gz" -C "$WORK" --exclude='*.pt' runs \
      && echo "comparison runs (no checkpoints): $OUT/comparison_runs.tar.gz"
  fi
fi

# The job queue: small runs through the real queue and worker pool, 1, 2 and 4 workers per GPU
# (workers_per_device): runs per hour, mean run time, the wall time with no run training.
# shellcheck disable=SC2086
wanted queue && step "queue throughput per workers_per_device" 150 "$PY" bench/queue_load.py \
  $QL_ARGS

echo
echo "=== summary (steps: $ONLY)"
cat "$SUMMARY"
n_bad=$(grep -c -v '^ok ' "$SUMMARY")
echo "=== gpu_check done in ${SECONDS} s: $(grep -c '^ok ' "$SUMMARY") ok, ${n_bad} not ok"
[ "$n_bad" -eq 0 ]
