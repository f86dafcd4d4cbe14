"""What the pages check before they offer a launch, read once and shared like the store's
reads (``app_pages.reads``): whether the run database answers at all (else every page says so
in one line and stops), the teacher's room (its banner and locks), whether this session is the
teacher, and whether the workers can get a dataset's files (with the one warning that says they
cannot).

The server checks all of it again when runs are submitted; these reads only let a page say so
before the button instead of after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import streamlit as st

from app_pages import identity, stores
from samon_app.data_warning import DataWarning, cifar_datasets, data_warning
from samon_app.markup import md_escape
from samon_core import service
from samon_core.runs import database
from samon_core.runs.redact import display_url, redact
from samon_core.service import preflight

DATABASE_TTL_S = 2.0  # a database that stops or comes back shows within two seconds
ROOM_TTL_S = 1.0  # a pinned message reaches every open page within about a second


@st.cache_resource(ttl=DATABASE_TTL_S, show_spinner=False, max_entries=4)
def _database_problem(root_dir: str) -> str | None:
    """None when the run store's database answers (one small read), else one line saying that
    it does not, its URL without password."""
    try:
        database.read_room_body(stores.store_at(root_dir).engine)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the page says it in one line
        url = database.database_url(Path(root_dir), stores.database_url())
        lines = str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__]
        return (f"The run database {display_url(url)} does not answer "
                f"({redact(lines[0], url)[:300]}). Runs cannot be shown or launched until it "
                "does; reload the page then.")
    return None


def database_ui() -> bool:
    """The one error line when the run database does not answer; True when it does."""
    problem = _database_problem(stores.root())
    if problem is None:
        return True
    st.error(md_escape(problem, 600), icon=":material/cloud_off:")
    return False
DATA_TTL_S = 30.0  # files put in place, or the network back, show within half a minute


@st.cache_resource(ttl=ROOM_TTL_S, show_spinner=False, max_entries=4)
def _room(root_dir: str) -> service.Room:
    return service.read_room(stores.store_at(root_dir))


def room() -> service.Room:
    """The room as the teacher set it (at most ``ROOM_TTL_S`` old, shared: a frozen Room)."""
    return _room(stores.root())


def forget_room() -> None:
    """After the teacher changed the room: every page reads it afresh."""
    _room.clear()


def is_teacher() -> bool:
    """Whether this session signed in with the server's teacher token (``identity.teacher_token``
    checks it on every call; False when the server has none or its settings cannot be read)."""
    return identity.teacher_token() is not None


@st.cache_resource(ttl=DATA_TTL_S, show_spinner=False, max_entries=16)
def _data_facts(datasets: tuple[str, ...], data_dir: str) -> tuple[dict[str, bool], bool]:
    """(dataset -> its files are in ``data_dir``, the download host answers); the network is
    asked only when a file is missing (it may take seconds offline)."""
    folder = preflight.default_data_dir(data_dir)
    present = {d: preflight.cifar_files_present(d, folder) for d in datasets}
    if all(present.values()):
        return present, True  # not asked: nothing needs downloading
    return present, preflight.online()


def data_problem(datasets: Iterable[str]) -> DataWarning | None:
    """The warning about the CIFAR files of a launch training on ``datasets``, or None."""
    cifar = tuple(cifar_datasets(datasets))
    if not cifar:
        return None
    folder = preflight.default_data_dir()
    present, online = _data_facts(cifar, str(folder))
    try:
        here = service.load_settings().checks_here
    except ValueError:
        here = True
    return data_warning(cifar, present=present, online=online, checks_here=here,
                        data_dir=str(folder.resolve()))


def data_warning_ui(datasets: Iterable[str]) -> bool:
    """The one warning about a launch's data, shown where it is called; True when the launch
    button must be disabled (the runs would fail)."""
    problem = data_problem(datasets)
    if problem is None:
        return False
    st.warning(problem.text, icon=":material/cloud_off:")
    return problem.blocks
