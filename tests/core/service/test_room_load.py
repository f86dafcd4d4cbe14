"""A room under load (issue 14), small: ``bench/room_load.py`` with 6 students, 2 Live sessions
and 1 real worker process, on each database the service runs on (issue 24): SQLite in the run
store, and a real PostgreSQL server (skipped where Debian's ``postgresql`` is missing). Every run
finishes with its records complete, each student's run over ``max_queued_per_owner`` is refused,
no owner ever holds more than that (sampled from the database), a student's key cannot cancel
another's run, and the Live sessions render without an exception and end showing their
comparison finished, with charts. The timings are the bench's business, not asserted here. Plus
the rule that judges an extra run, fast."""

from __future__ import annotations

import sys

import pytest
from support import postgres_server
from support.configs import tiny_config
from support.paths import BENCH

sys.path.insert(0, str(BENCH))  # bench/ is no package

import room_load  # noqa: E402
from room_load import RoomSize, Student, extra_problem, run_room  # noqa: E402

from samon_core.runs.store import RunStore  # noqa: E402


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """No samon.toml of the developer is read (run_room sets the SAMON_* variables itself)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("engine", room_load.ENGINES)
def test_a_small_room_under_load_loses_nothing_and_keeps_its_limits(clean_cwd, engine):
    pytest.importorskip("torch")
    if engine == "postgres" and (why := postgres_server.why_unavailable()):
        pytest.skip(why)
    size = RoomSize(students=6, viewers=2, workers=1, limit=3, timeout=300.0, engine=engine)
    room = run_room(size, clean_cwd / "room")
    assert room.database.startswith({"sqlite": "SQLite", "postgres": "PostgreSQL"}[engine])
    assert room.problems == [], "\n".join(room_load.report(room))
    extras = [s.extra_run for s in room.students if s.extra_run]
    assert len(room.runs["train_s"]) == 3 * size.students + len(extras)  # all finished
    # one worker cannot finish a comparison while six are being queued: refusals happened
    assert sum(s.extra_refused == "max_queued_per_owner" for s in room.students) >= 1
    assert max(room.max_active.values()) == size.limit  # the sampler saw the full queue
    assert room.cross_cancel == "refused"
    assert all(v.render_ms for v in room.viewers) and len(room.viewers) == size.viewers


def _student_with_runs(store: RunStore, ended: list[float | None]) -> Student:
    """A student whose comparison runs ended at ``ended`` (None: still queued)."""
    me = Student("student00")
    for seed, when in enumerate(ended):
        rid = store.create_run(tiny_config(seed=seed), {"owner": me.name})
        if when is not None:
            store.write_status(rid, "finished", ended=when)
        me.run_ids.append(rid)
    return me


def test_an_extra_run_counts_only_if_refused_or_queued_after_a_run_ended(tmp_path):
    store = RunStore(tmp_path / "runs")
    busy = _student_with_runs(store, [None, None, None])
    busy.extra_refused = "max_queued_per_owner"
    assert extra_problem(busy, store, limit=3) is None
    busy.extra_refused = "max_queue"  # refused, but not by the per-owner limit
    assert "max_queue" in extra_problem(busy, store, limit=3)
    busy.extra_refused = None
    busy.extra_run = store.create_run(tiny_config(seed=9), {"owner": busy.name, "created": 200.0})
    assert "3 runs active" in extra_problem(busy, store, limit=3)
    freed = _student_with_runs(store, [100.0, None, None])  # one ended before the extra came
    freed.extra_run = busy.extra_run
    assert extra_problem(freed, store, limit=3) is None
    late = _student_with_runs(store, [300.0, None, None])  # it ended only afterwards
    late.extra_run = busy.extra_run
    assert extra_problem(late, store, limit=3) is not None
