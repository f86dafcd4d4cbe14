"""Fixtures shared by the test modules (helpers they import live in tests/support/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# tests/support is imported as ``support`` by the test modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """An empty run store for the app's pages: SAMON_RUNS_DIR points at it, no local workers
    start, no samon.toml of the developer is read, the repository is importable."""
    from samon_core.runs.store import RunStore

    root = tmp_path / "runs"
    monkeypatch.setenv("SAMON_RUNS_DIR", str(root))
    monkeypatch.setenv("SAMON_START_WORKERS", "0")
    monkeypatch.delenv("SAMON_SETTINGS", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./samon.toml of the developer
    monkeypatch.syspath_prepend(str(REPO))
    return RunStore(root)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No SAMON_* variable and no samon.toml of the developer (the working directory is a fresh
    temporary folder): the settings are the defaults plus what the test sets. Returns
    ``monkeypatch`` for the test's own changes."""
    import os

    for var in list(os.environ):
        if var.startswith("SAMON_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# The job service's tests on both engines (SQLite, PostgreSQL): ``any_store``, ``postgres``.
from support.engines import any_store, postgres  # noqa: E402, F401


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (the tests share 2 cores; one thread is also
    deterministic); modules that train ask for it with ``pytestmark``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
