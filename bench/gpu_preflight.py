"""The GPU check's first seconds: is this interpreter able to run every step of bench/gpu_check.sh?

A lent GPU machine runs its own image (Python 3.12, torch 2.11, no pydantic, sqlalchemy, ...) for
a few minutes of device time, so a missing package must show at once, all of them together, and
not as a traceback halfway through the check. Two stages:

``--torch-only``  reads the installed torch version from its metadata (no ``import torch``, so it
                  answers in well under a second) and fails when it is older than ``OLDEST_TORCH``;
(default)         the same, then imports every module of ``samon_core``, the bench scripts the
                  check runs (their top-level imports are what they need), the test support code
                  that writes CIFAR-format data and the optional optimizer package; prints where
                  each third-party package came from (the image or the carried wheels) and every
                  import that failed, with the fix. Exit status 1 when anything is missing.

    python bench/gpu_preflight.py --torch-only
    PYTHONPATH=/tmp/site:. python bench/gpu_preflight.py
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The oldest torch the core tests are known to pass under (bash bench/torch211_env.sh runs them
# under 2.11.0, the GPU machine's version); requirements.txt pins the version .venv uses.
OLDEST_TORCH = (2, 11)
OLDEST_PYTHON = (3, 10)  # pyproject's requires-python
# The bench scripts bench/gpu_check.sh runs (besides `python -m samon_core`).
BENCH_SCRIPTS = ("step_cost.py", "throughput.py", "queue_load.py")
# Third-party packages whose origin and version the output names (image or carried wheel).
PACKAGES = ("torch", "torchvision", "numpy", "filelock", "pydantic", "pydantic_core",
            "pydantic_settings", "typing_extensions", "sqlalchemy", "lion_pytorch")
FIX_PACKAGES = ("missing packages: run `bash bench/gpu_wheels.sh` here (after adding them to "
                "bench/gpu_wheels.txt if they are new), name '.whl' in the device call's carry "
                "and let bench/gpu_check.sh install them (bench/README.md)")
FIX_PATH = "put the repository root on PYTHONPATH (bench/gpu_check.sh does)"
FIX_CODE = "an import fails in the checkout's own code: fix it before spending device time"


def version_tuple(text: str) -> tuple[int, ...]:
    """'2.11.0+cu130' -> (2, 11, 0); '2.12.0.dev20260101' -> (2, 12, 0)."""
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def torch_problem() -> str | None:
    """Why this interpreter cannot run the project's torch code, or None."""
    if sys.version_info[:2] < OLDEST_PYTHON:
        return f"Python {sys.version.split()[0]} is older than {OLDEST_PYTHON} (pyproject)"
    try:
        found = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "torch is not installed in this interpreter (" + sys.executable + ")"
    if version_tuple(found)[:2] < OLDEST_TORCH:
        oldest = ".".join(map(str, OLDEST_TORCH))
        return (f"torch {found} is older than {oldest}, the oldest torch this project is tested "
                f"with (bench/torch211_env.sh); use an image with torch >= {oldest}")
    return None


def _module_names() -> list[str]:
    """Every module of samon_core, from its files (listing imports nothing); not __main__,
    whose import would run the CLI."""
    root = REPO / "samon_core"
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


def _import_script(path: Path) -> None:
    """Run a bench script's top level (its imports) without running its main()."""
    spec = importlib.util.spec_from_file_location(f"_gpu_preflight_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def missing_packages(problems: list[str]) -> list[str]:
    """The distinct top-level packages named by "No module named 'x.y'" failures."""
    names = re.findall(r"No module named '([^'.]+)", "\n".join(problems))
    return sorted(set(names))


def advice(problems: list[str]) -> list[str]:
    """What to do about the failures, one line per kind of cause."""
    lines = []
    if missing_packages(problems):
        lines.append(FIX_PACKAGES)
    if any(p.startswith("samon_core: not importable") for p in problems):
        lines.append(FIX_PATH)
    if any("No module named" not in p and "not importable" not in p for p in problems):
        lines.append(FIX_CODE)
    return lines


def import_problems() -> list[str]:
    """Try every import the check's steps need; one line per failure."""
    problems: list[str] = []
    for name in ("torch", "torchvision", "lion_pytorch"):
        try:
            importlib.import_module(name)
        except Exception as exc:
            problems.append(f"{name}: {_failure(exc)}")
    if importlib.util.find_spec("samon_core") is None:
        return problems + ["samon_core: not importable (the repository is not on PYTHONPATH)"]
    for name in _module_names():
        try:
            importlib.import_module(name)
        except Exception as exc:
            problems.append(f"{name}: {_failure(exc)}")
    sys.path.insert(0, str(REPO / "tests"))  # as the check's data step does
    try:
        importlib.import_module("support.cifar")
    except Exception as exc:
        problems.append(f"tests/support/cifar.py: {_failure(exc)}")
    for script in BENCH_SCRIPTS:
        try:
            _import_script(REPO / "bench" / script)
        except Exception as exc:
            problems.append(f"bench/{script}: {_failure(exc)}")
    return problems


def origins() -> list[str]:
    """'pydantic 2.14.4  /tmp/site/pydantic' per package: the image's or the carried one."""
    lines = []
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except Exception:  # reported with the imports that need it
            lines.append(f"  {name:18} missing")
            continue
        where = Path(getattr(module, "__file__", "") or "?").parent
        version = getattr(module, "__version__", None) or _dist_version(name)
        lines.append(f"  {name:18} {version:14} {where}")
    return lines


def _dist_version(module: str) -> str:
    try:
        return importlib.metadata.version(module.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    problem = torch_problem()
    if problem:
        print(f"gpu_preflight: FAILED: {problem}", flush=True)
        return 1
    print(f"gpu_preflight: Python {sys.version.split()[0]}, torch "
          f"{importlib.metadata.version('torch')} (>= {'.'.join(map(str, OLDEST_TORCH))})",
          flush=True)
    if "--torch-only" in argv:
        return 0
    problems = import_problems()
    print("\n".join(origins()))
    if problems:
        missing = ", ".join(missing_packages(problems)) or "none"
        print(f"gpu_preflight: FAILED: {len(problems)} import(s) do not work; "
              f"missing packages: {missing}")
        print("\n".join(f"  {p}" for p in problems))
        print("\n".join(f"gpu_preflight: {line}" for line in advice(problems)))
        return 1
    print(f"gpu_preflight: every import works ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
