#!/usr/bin/env bash
# Downloads into .whl/ the wheels that bench/gpu_check.sh installs on the lent GPU machine, whose
# image has torch but not the rest of samon_core's run-time needs and reaches no registry:
# the pins of bench/gpu_wheels.txt, as CPython 3.12 manylinux x86-64 wheels, no dependencies
# resolved (each one is named there). Then checks that .whl/ and the working tree that travels
# with a device call (git's tracked and untracked-not-ignored files) fit in its 64 MiB, and prints
# the sizes. .whl/ is ignored by git (.gitignore) and travels only when the call names it in carry.
#
#   bash bench/gpu_wheels.sh            # from anywhere in the checkout; reuses what is there
#   PY=python3.12 bash bench/gpu_wheels.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-python3}
[ -x .venv/bin/python ] && [ "$PY" = python3 ] && PY=.venv/bin/python
DEST=.whl
LIMIT_MIB=64   # the device call's cap on what travels (tree + carry)

mkdir -p "$DEST"
# The pins as pip's requirement lines (comments stripped).
mapfile -t PINS < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' bench/gpu_wheels.txt | grep -v '^$')
# pip matches each manylinux_2_N tag exactly: name the ones the pinned wheels use.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any \
  -d "$DEST" "${PINS[@]}"

# Exactly one wheel per pinned name: two versions of one package stop the install there.
"$PY" - "$DEST" "${PINS[@]}" <<'PY'
import re
import sys
from pathlib import Path

dest, pins = Path(sys.argv[1]), sys.argv[2:]
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()  # noqa: E731
wanted = {norm(p.split("==")[0]): p.split("==")[1] for p in pins}
have: dict[str, list[str]] = {}
for w in sorted(dest.glob("*.whl")):
    name, version = w.name.split("-")[:2]
    have.setdefault(norm(name), []).append(version)
problems = [f"{n}: wanted {v}, found {have.get(n, [])}" for n, v in wanted.items()
            if have.get(n) != [v]]
problems += [f"{n}: not pinned in bench/gpu_wheels.txt ({v}); remove it from .whl/"
             for n, v in have.items() if n not in wanted]
if problems:
    sys.exit("gpu_wheels: .whl/ does not match bench/gpu_wheels.txt:\n  " + "\n  ".join(problems))
PY

wheels=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
# What travels besides: tracked files and untracked files git does not ignore (present ones).
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
       | awk '{s += $1} END {print s + 0}')
shared=0
[ -d shared ] && shared=$(du -sb shared | cut -f1)
total=$((wheels + tree + shared))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "gpu_wheels: $(ls "$DEST"/*.whl | wc -l) wheels in $DEST: $(mib "$wheels")"
extra=""
[ "$shared" -gt 0 ] && extra=" + shared/ $(mib "$shared")"
echo "gpu_wheels: working tree that travels: $(mib "$tree")$extra"
echo "gpu_wheels: total $(mib "$total") of $LIMIT_MIB MiB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu_wheels: too large for one device call (limit $LIMIT_MIB MiB)" >&2
  exit 1
fi
