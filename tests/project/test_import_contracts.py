"""The layer picture of ARCHITECTURE.md, enforced: ``lint-imports`` (import-linter) keeps every
contract of ``.importlinter`` on the real tree, and breaks them on a copy of the tree that has one
forbidden import of each kind (so a contract that could never fail would show here).

Import cycles between modules, and module and function sizes, are tests/project/test_layout.py's;
what a page loads at run time (torch) is tests/pages/test_app_pages.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import REPO

CONFIG = REPO / ".importlinter"
PACKAGES = ("samon_core", "samon_app", "app_pages")
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contracts on the packages under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT, str(CONFIG)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract():
    result = lint_imports(REPO)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"lint-imports failed:\n{out}"
    assert "0 broken" in out and "Contracts: 8 kept" in out, out


# (file to append to, the forbidden line, what lint-imports must report)
BAD_IMPORTS = [
    ("samon_core/runs/presets.py", "import streamlit",
     "samon_core.runs.presets -> streamlit"),
    ("samon_core/catalog/models.py", "from samon_core.runs import config",
     "samon_core.catalog.models -> samon_core.runs.config"),
    ("samon_core/train/setup.py", "def _late():\n    from samon_core.service import settings",
     "samon_core.train.setup -> samon_core.service.settings"),
    ("samon_core/claims/verdicts.py", "def _late():\n    from samon_core import owner_cli",
     "samon_core.claims.verdicts -> samon_core.owner_cli"),
    ("samon_core/toy/methods.py", "from samon_core import norms",
     "samon_core.toy.methods -> samon_core.norms"),
    ("samon_app/formatting.py", "import streamlit",
     "samon_app.formatting -> streamlit"),
    ("samon_app/reuse.py", "from samon_core.service import pool",
     "samon_app.reuse -> samon_core.service.pool"),
    ("app_pages/banner.py", "import plotly.graph_objects",
     "app_pages.banner -> plotly"),
    ("app_pages/home.py", "import torch",
     "app_pages.home -> torch"),
    ("samon_app/series.py", "def _late():\n    from samon_core.train import sharpness",
     "samon_app.series -> samon_core.train.sharpness"),
]


def test_each_kind_of_forbidden_import_breaks_a_contract(tmp_path):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path, line, _ in BAD_IMPORTS:
        with open(tmp_path / path, "a") as f:
            f.write(f"\n\n{line}\n")
    result = lint_imports(tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    missed = [shown for _, _, shown in BAD_IMPORTS if shown not in out]
    assert not missed, f"lint-imports did not report {missed}:\n{out}"
