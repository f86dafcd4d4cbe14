"""The app's run store, on the database the settings name: ``SAMON_DATABASE_URL`` or
samon.toml's ``database_url`` (a room of machines on one PostgreSQL), else the store's own
SQLite. Every page's read goes through ``store`` / ``store_at``, so the app never opens a second,
empty SQLite database beside the one its workers use. Read on every call (cheap), so tests can
change the environment.
"""

from __future__ import annotations

from samon_core import service
from samon_core.runs.store import RunStore


def database_url() -> str | None:
    """The database the settings name; None for the run store's own SQLite (also when the
    settings cannot be read: the pages say why where they read them)."""
    try:
        return service.load_settings().database
    except ValueError:
        return None


def store_at(root_dir: str) -> RunStore:
    """The run store at ``root_dir`` on the settings' database."""
    return RunStore(root_dir, database_url=database_url())


def store() -> RunStore:
    """The run store (``$SAMON_RUNS_DIR`` or ./runs) on the settings' database."""
    return RunStore(database_url=database_url())


def root() -> str:
    """The run store's folder, the key of the pages' shared caches."""
    return str(store().root)
