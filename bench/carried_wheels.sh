# Sourced by bench/gpu_check.sh and bench/torch211_env.sh (not run on its own): makes the wheels
# of .whl/ (bench/gpu_wheels.sh) and this checkout importable for an interpreter that has only
# what the GPU machine's image has. The wheels go into a folder of their own with `pip install
# --no-index --no-deps --target` (no registry there, and no resolver that could touch the image's
# torch); that folder and the repository root go first on PYTHONPATH, which the worker processes
# the queue starts inherit, so nothing needs `pip install -e`.
#
#   carried_wheels PYTHON SITE_DIR    # from the repository root; returns 1 when pip fails

carried_wheels() {
  local py=$1 site=$2 repo
  repo=$(pwd)
  shopt -s nullglob
  local wheels=(.whl/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -eq 0 ]; then
    echo "carried_wheels: no .whl/*.whl here (run bash bench/gpu_wheels.sh; name .whl in carry)"
  elif ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    # The wheels are CPython 3.12's (the GPU image's); another interpreter (.venv) has its own.
    echo "carried_wheels: not installed, they are for Python 3.12 and $py is not"
  else
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --disable-pip-version-check --target "$site" "${wheels[@]}" || return 1
    echo "carried_wheels: ${#wheels[@]} wheels installed into $site"
  fi
  export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
}
