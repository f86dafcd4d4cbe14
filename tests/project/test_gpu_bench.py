"""The GPU check's preparation (bench/gpu_*): what the lent machine's image lacks is carried, the
pins agree with requirements.txt, and the preflight names every missing import and a too old
torch before any step spends device time."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from support.paths import BENCH, REPO

# Import names whose distribution is not the import name with '_' as '-'.
DISTRIBUTION = {"yaml": "pyyaml", "dotenv": "python-dotenv", "PIL": "pillow"}


def _preflight():
    spec = importlib.util.spec_from_file_location("gpu_preflight", BENCH / "gpu_preflight.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _requirements(path: Path) -> dict[str, Requirement]:
    """name -> requirement of a requirements file (comments, options and -r lines skipped)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            found[req.name.lower().replace("_", "-")] = req
    return found


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside a ``try`` that catches ImportError/ModuleNotFoundError:
    an optional extra (the body: a missing package is a clear error when the feature is used,
    e.g. the digits dataset's scikit-learn) or an old Python's fallback (the handler: tomli on
    3.10). The GPU check needs neither, so neither is carried."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            for part in (*node.body, *node.handlers):
                out.update(id(n) for n in ast.walk(part)
                           if isinstance(n, ast.Import | ast.ImportFrom))
    return out


def _third_party_imports() -> set[str]:
    """Top-level modules samon_core imports anywhere (lazy imports inside functions too), less
    the standard library, samon_core itself and the guarded optional imports (``_guarded``)."""
    names = set()
    for path in (REPO / "samon_core").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in
            ("samon_core", "__future__")}


def test_the_scan_skips_only_imports_guarded_against_their_absence():
    tree = ast.parse("try:\n    import tomllib\nexcept ModuleNotFoundError:\n"
                     "    import tomli as tomllib\n"
                     "try:\n    import numpy\nexcept ValueError:\n    pass\nimport yaml\n")
    guarded = {ast.unparse(n) for n in ast.walk(tree) if id(n) in _guarded(tree)}
    assert guarded == {"import tomllib", "import tomli as tomllib"}


def test_every_package_samon_core_imports_is_on_the_gpu_image_or_carried():
    on_image = set(_requirements(BENCH / "gpu_image.txt"))
    carried = set(_requirements(BENCH / "gpu_wheels.txt"))
    imported = {DISTRIBUTION.get(n, n.replace("_", "-")) for n in _third_party_imports()}
    assert "torch" in imported and "pydantic" in imported  # the scan sees imports at all
    missing = sorted(imported - on_image - carried)
    assert not missing, (f"{missing}: on the GPU machine's image? then add to bench/gpu_image.txt; "
                         "if not, pin in bench/gpu_wheels.txt (carried as wheels)")
    assert not on_image & carried, "a package both on the image and carried"


def test_carried_wheels_are_pinned_within_requirements():
    required = _requirements(REPO / "requirements.txt")
    carried = _requirements(BENCH / "gpu_wheels.txt")
    for name, req in carried.items():
        (spec,) = req.specifier  # exactly one '==' pin: no resolver runs on the machine
        assert spec.operator == "==", name
        if name in required:
            assert required[name].specifier.contains(spec.version), (
                f"{name} {spec.version} is outside requirements.txt's {required[name]}")
    # What pydantic and pydantic-settings need is carried too (--no-deps installs nothing else).
    needs = {"pydantic-core", "annotated-types", "typing-inspection", "python-dotenv"}
    assert needs <= set(carried)


def test_the_oldest_torch_the_preflight_accepts_is_the_image_torch_the_tests_run_under():
    image_torch = _requirements(BENCH / "gpu_image.txt")["torch"]
    (spec,) = image_torch.specifier
    pre = _preflight()
    assert pre.version_tuple(spec.version)[:2] == pre.OLDEST_TORCH


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.11.0+cu130", (2, 11, 0)), ("2.14.1", (2, 14, 1)), ("2.12.0.dev20260101", (2, 12, 0)),
     ("2.9", (2, 9))],
)
def test_version_tuple(text, expected):
    assert _preflight().version_tuple(text) == expected


def test_a_torch_older_than_the_oldest_tested_one_is_refused_with_the_versions(monkeypatch):
    pre = _preflight()
    monkeypatch.setattr(pre.importlib.metadata, "version", lambda name: "2.10.2+cu128")
    problem = pre.torch_problem()
    assert problem and "torch 2.10.2+cu128 is older than 2.11" in problem
    monkeypatch.setattr(pre.importlib.metadata, "version", lambda name: "2.11.0+cu130")
    assert pre.torch_problem() is None

    def not_installed(name):
        raise pre.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(pre.importlib.metadata, "version", not_installed)
    assert "torch is not installed" in pre.torch_problem()


def test_the_advice_follows_the_kind_of_failure():
    pre = _preflight()
    missing = ["samon_core.cli: ModuleNotFoundError: No module named 'pydantic'",
               "samon_core.runs: ModuleNotFoundError: No module named 'sqlalchemy.engine'"]
    assert pre.missing_packages(missing) == ["pydantic", "sqlalchemy"]
    assert pre.advice(missing) == [pre.FIX_PACKAGES]
    broken = ["samon_core.cli: AttributeError: module 'x' has no attribute 'y'"]
    assert pre.missing_packages(broken) == []
    assert pre.advice(broken) == [pre.FIX_CODE]
    assert pre.advice(["samon_core: not importable (the repository is not on PYTHONPATH)"]) == [
        pre.FIX_PATH]


def test_the_module_list_is_every_file_of_samon_core_but_main():
    names = _preflight()._module_names()
    files = [p for p in (REPO / "samon_core").rglob("*.py") if p.name != "__main__.py"]
    assert len(names) == len(set(names)) == len(files)
    assert {"samon_core", "samon_core.train.trainer", "samon_core.service.worker"} <= set(names)
    assert not [n for n in names if n.endswith("__main__")]


def test_the_preflight_lists_every_missing_package_at_once_and_fails(tmp_path):
    """Run as the GPU check runs it, with pydantic and sqlalchemy hidden: exit 1, both named, and
    the carried-wheels advice; with nothing hidden (this .venv): exit 0."""
    for name in ("pydantic", "sqlalchemy"):
        (tmp_path / f"{name}.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    cmd = [sys.executable, str(BENCH / "gpu_preflight.py")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "missing packages: pydantic, sqlalchemy" in out.stdout
    assert "bench/gpu_wheels.sh" in out.stdout
    ok = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every import works" in ok.stdout
