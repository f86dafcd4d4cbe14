#!/usr/bin/env bash
# The core tests under what the lent GPU machine's image has, so that the first GPU call does not
# discover an API its older torch lacks: Python 3.12 with the packages of bench/gpu_image.txt
# (torch 2.11.0, torchvision 0.26.0, numpy, scipy, pandas, ...), plus the carried wheels of .whl/
# installed as bench/gpu_check.sh installs them there (bench/carried_wheels.sh: a --target
# folder on PYTHONPATH with the repository, no `pip install -e`).
#
# Builds the environment once, outside the repository (VENV, default /work/venv312; ~5 GB: PyPI
# has only the CUDA build of torch 2.11 for Linux, which runs on the CPU too), brings it in line
# with bench/gpu_image.txt, then runs the import check and the tests. Not part of .ci/run: its
# first build downloads ~3 GB (bench/README.md gives the times).
#
#   bash bench/torch211_env.sh                     # build if needed, then the core tests
#   bash bench/torch211_env.sh tests/core/optim/test_optim.py  # other test files or pytest args
#   SLOW=1 bash bench/torch211_env.sh              # also the slow tests of those files
#   PY312=/path/to/python3.12 VENV=/tmp/v bash bench/torch211_env.sh
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-/work/venv312}
# The image's torch, torchvision and the other packages the code and tests use (one home:
# bench/gpu_image.txt).
image_pin() { sed -n "s/^$1==\([^[:space:]#]*\).*/\1/p" bench/gpu_image.txt; }
TORCH=$(image_pin torch)
TORCHVISION=$(image_pin torchvision)
# The core tests: optimizers, models, training (step, loop, lockstep, data, checkpoints),
# sharpness, gamma statistics, loss slices. None needs the app stack (streamlit, plotly), which the
# image lacks and the GPU check never loads.
CORE_TESTS=(tests/core/optim/test_optim.py tests/core/models/test_models.py
            tests/core/train/test_trainer.py tests/core/train/test_sharpness.py
            tests/core/train/test_lockstep.py tests/core/train/data/test_data.py
            tests/core/train/test_normstats.py tests/core/train/test_landscape.py
            tests/core/train/test_data_seed.py)

find_python312() {
  local c
  for c in "${PY312:-}" python3.12 /root/.pyenv/versions/3.12*/bin/python; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 \
      && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' \
      && { command -v "$c"; return 0; }
  done
  echo "torch211_env: no Python 3.12 found (set PY312)" >&2
  return 1
}

has_torch() {
  "$VENV/bin/python" - "$TORCH" "$TORCHVISION" 2>/dev/null <<'PY'
import sys

import torch
import torchvision

found = (torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])
sys.exit(found != tuple(sys.argv[1:3]))
PY
}

t0=$SECONDS
if ! [ -x "$VENV/bin/python" ]; then
  py=$(find_python312)
  echo "torch211_env: building $VENV with $py (torch $TORCH, torchvision $TORCHVISION; minutes)"
  "$py" -m venv "$VENV"
fi
# A no-op (seconds) when the environment already matches bench/gpu_image.txt.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r bench/gpu_image.txt
has_torch || { echo "torch211_env: torch $TORCH not importable in $VENV" >&2; exit 1; }
echo "torch211_env: $VENV ready in $((SECONDS - t0)) s"

ls .whl/*.whl >/dev/null 2>&1 || PY="$VENV/bin/python" bash bench/gpu_wheels.sh
# shellcheck source=bench/carried_wheels.sh
. bench/carried_wheels.sh
rm -rf "$VENV/carried"  # the wheels of now, not of an earlier pin
carried_wheels "$VENV/bin/python" "$VENV/carried"
"$VENV/bin/python" bench/gpu_preflight.py

marker="not slow and not browser"
[ "${SLOW:-0}" = 1 ] && marker="not browser"
args=("$@")
[ ${#args[@]} -eq 0 ] && args=("${CORE_TESTS[@]}")
t1=$SECONDS
rc=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "$marker" "${args[@]}" || rc=$?
echo "torch211_env: tests under torch $TORCH took $((SECONDS - t1)) s (exit $rc)"
exit "$rc"
