"""The job service's tests on both engines: a run store on SQLite (its ``samon.db``) or on a real
PostgreSQL server (``postgres_server``), chosen by a parametrised fixture. Import the fixtures
into a test module: ``from support.engines import any_store, postgres  # noqa: F401``.

On PostgreSQL, ``SAMON_DATABASE_URL`` is set for the test, so every store of the run folder
(the trainer opens its own) and every worker process started with the test's environment use
the same database."""

from __future__ import annotations

import pytest

from samon_core.runs.database import DATABASE_URL_ENV
from samon_core.runs.store import RunStore
from support import postgres_server

ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session (skipped where none can be started)."""
    why = postgres_server.why_unavailable()
    if why:
        pytest.skip(why)
    server = postgres_server.PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture(params=ENGINES)
def any_store(request, tmp_path, monkeypatch):
    """An empty run store on each engine (a fresh database per test)."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
        monkeypatch.setenv(DATABASE_URL_ENV, url)
        return RunStore(tmp_path / "runs", database_url=url)
    return RunStore(tmp_path / "runs")
