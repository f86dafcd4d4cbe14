#!/usr/bin/env bash
# One prepared check on a lent GPU machine, in one call of at most ~8 minutes (the step limits
# add up to 480 s; bench/README.md):
# the environment, the step cost, the data path throughput, a 3-method comparison (ResNet-20 on
# generated CIFAR-100-format data: the machine has no internet) and the queue throughput with
# 1, 2 and 4 workers per GPU.
# Every step has its own timeout and goes on after a failure ("failed: ...").
#
#   bash bench/gpu_check.sh                 # from the repository root, with .venv built
#   PY=python3 bash bench/gpu_check.sh      # another interpreter
#   SMOKE=1 bash bench/gpu_check.sh         # tiny settings on the CPU: checks the commands only
#
# Output: the terminal, and $OUT/gpu_check.log when $OUT is set.
set -u

cd "$(dirname "$0")/.." || exit 1
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
SMOKE=${SMOKE:-0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/samon-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.log") 2>&1
fi

# Full settings for the GPU; SMOKE=1 shrinks every step so that the CPU runs it in a minute.
if [ "$SMOKE" = 1 ]; then
  DEV=cpu; STEP_ARGS="tiny_resnet --batch-size 16 --steps 1 --repeats 1"
  TP_ARGS="--model tiny_resnet --steps 2 --warmup 1 --repeats 1 --batch-size 32 --no-dataloader"
  N_TRAIN=512; N_TEST=128; CMP_SET="--set model=tiny_resnet --set epochs=1 --set batch_size=64"
  QL_ARGS="--device cpu --runs 4 --workers-per-device 1,2 --timeout 120"
else
  DEV=cuda; STEP_ARGS="resnet20 wrn16_4 --steps 10 --repeats 5"
  TP_ARGS="--steps 100 --warmup 10 --repeats 3"
  N_TRAIN=10000; N_TEST=2000; CMP_SET="--set epochs=3"
  # 12 small ResNet-20 runs per value (a workshop's size): each value ~15-40 s incl. the
  # workers' torch and CUDA start; a value past 45 s is cut and reported, the rest goes on.
  QL_ARGS="--device cuda --model resnet20 --train-subset 2048 --test-subset 512 --batch-size 128
           --runs 12 --workers-per-device 1,2,4 --timeout 45"
fi

# step NAME SECONDS COMMAND...: run with a time limit; a failure is reported, not fatal.
step() {
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" || echo "failed: $name (exit $?)"
  echo "--- $name: $((SECONDS - t0)) s"
}

echo "=== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), SMOKE=$SMOKE, device $DEV"
step "nvidia-smi" 15 nvidia-smi
step "python and torch" 40 "$PY" -c "
import sys, torch
print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA build', torch.version.cuda)
print('CUDA available:', torch.cuda.is_available(), '| devices:', torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(' ', i, torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
print('bf16 supported:', torch.cuda.is_available() and torch.cuda.is_bf16_supported())"

# Step cost: SGD vs SAM-all vs SAM-ON, interleaved (the README's GPU rows).
# shellcheck disable=SC2086  # the argument lists are meant to be split
step "step cost" 80 "$PY" bench/step_cost.py $STEP_ARGS --device "$DEV"

# Data path: the on-device loader against the compute limit (and a DataLoader on the GPU).
# shellcheck disable=SC2086
step "throughput" 70 "$PY" bench/throughput.py --device "$DEV" $TP_ARGS

# A 3-method comparison (SGD, SAM-all, SAM-ON in lockstep) through the real CLI and data path.
DATA="$WORK/data"
step "generate CIFAR-100-format data" 40 "$PY" -c "
import sys; sys.path.insert(0, 'tests')
from support.cifar import write_cifar_like
print(write_cifar_like(sys.argv[1], 'cifar100', n_train=int(sys.argv[2]), n_test=int(sys.argv[3])))
" "$DATA" "$N_TRAIN" "$N_TEST"
# shellcheck disable=SC2086
step "comparison ResNet-20 x 3 methods" 110 env SAMON_DATA_DIR="$DATA" "$PY" -m samon_core run \
  --preset cifar100-resnet20-cpu --runs-dir "$WORK/runs" --progress none --owner gpu-check \
  --set device="$DEV" --set train_subset="$N_TRAIN" --set test_subset="$N_TEST" \
  --set sharpness_samples=256 $CMP_SET
step "comparison results" 15 "$PY" -m samon_core list --runs-dir "$WORK/runs"

# The job queue: small runs through the real queue and worker pool, 1, 2 and 4 workers per GPU
# (workers_per_device): runs per hour, mean run time, the wall time with no run training.
# shellcheck disable=SC2086
step "queue throughput per workers_per_device" 110 "$PY" bench/queue_load.py $QL_ARGS

echo
echo "=== gpu_check done in ${SECONDS} s"
