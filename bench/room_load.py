"""A room of students under load: owner keys, comparisons, limits and Live pages at once.

``--students`` threads each register a name (``service.register_owner``) and queue a 3-run
comparison (SGD, SAM-all, SAM-ON; tiny runs, each student its own seed so nothing is reused) with
their own key, then try one run more, which ``max_queued_per_owner`` (here ``--limit``, 3) must
refuse. One student tries to cancel another's run with their own key (must be ``NotAllowed``).
``--workers`` real worker processes (``bench/queue_load.py``'s, ``--exit-when-idle``) start as soon
as the first comparison is queued, so students submit while runs train. Meanwhile ``--viewers``
``AppTest`` sessions follow one student's comparison each on the Live page, from that student's
link (``?owner=..&key=..&group=..``), and rerun every 1-2 s.

The room's server keeps its runs, queue and owners in one database (issue 24): ``--engine sqlite``
(the default: ``samon.db`` in the room's run store, as on one machine) or ``--engine postgres``
(a throw-away PostgreSQL server on this machine, ``tests/support/postgres_server.py``, as for a
room of GPU machines; needs Debian's ``postgresql``). The app's sessions, the students and the
workers all reach it through ``SAMON_DATABASE_URL``.

Checks (``RoomResult.problems``): every run finished with epochs 1..E once and increasing steps
(``queue_load._check_runs``); every extra run was refused with ``max_queued_per_owner``, or was
accepted only after one of the owner's runs had ended; no owner ever had more than the limit
queued or running (sampled from the database every 0.5 s); the cross-owner cancel was refused; no
session raised, and each one's last render shows its comparison finished, with charts.

Figures: submit latency, Live render time under that load, runs finished per minute, total wall,
with the hardware and versions. AppTest is not thread-safe (each run swaps Streamlit's global
Runtime and patches its config), so the viewers' reruns take turns behind one lock; a render time
is measured inside the lock (the wait for a turn is reported apart). A real server runs sessions
as threads of one process too, where pure-Python rendering also takes turns (the GIL).

The driver lives here, not in tests/support/, because it reuses ``queue_load``'s helpers (worker
processes, record checks); ``tests/core/service/test_room_load.py`` runs it small with bench/ on
sys.path.

Usage: python bench/room_load.py [--students 30] [--viewers 10] [--workers 2] [--limit 3]
       [--engine sqlite|postgres] [--timeout 1800] [--keep]
       python bench/room_load.py --class-experiment [--students 30] [--workers 2]
       [--claim accuracy] [--size cpu] [--epochs E] [--timeout 7200] [--keep]
       (``--class-experiment``: every student adds one seed of a class experiment and the wall
       time to a decided class verdict is reported; bench/class_load.py)
Not part of the test suite (it takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
LIVE_PAGE = "app_pages/live.py"
sys.path.insert(0, str(REPO))  # run from a checkout

from queue_load import (  # noqa: E402 - bench/ is on sys.path (a script's own folder)
    ENGINES,
    _check_runs,
    _environment,
    _run_until_exit,
    _version,
    _worker_cmd,
    _worker_env,
    database,
    database_text,
)

from samon_core import service  # noqa: E402
from samon_core.runs import database as db  # noqa: E402
from samon_core.runs.config import RunConfig  # noqa: E402
from samon_core.runs.states import ACTIVE_STATES  # noqa: E402
from samon_core.runs.store import RunStore  # noqa: E402
from samon_core.service.settings import load_settings  # noqa: E402

EPOCHS = 1
APPTEST_TIMEOUT_S = 120.0  # one script run on a loaded 2-core machine
SAMPLE_EVERY_S = 0.5  # how often the database is asked for the runs per owner


@dataclass(frozen=True)
class RoomSize:
    students: int = 30
    viewers: int = 10
    workers: int = 2
    limit: int = 3  # max_queued_per_owner: exactly one comparison each
    timeout: float = 1800.0
    poll_s: tuple[float, float] = (1.0, 2.0)  # a viewer reruns after a random pause in this
    engine: str = "sqlite"  # the database of the room's server: one of ENGINES


@dataclass
class Student:
    name: str
    key: str = ""
    group: str = ""
    run_ids: list[str] = field(default_factory=list)
    submit_ms: float = 0.0
    extra_refused: str | None = None  # the limit named by the refusal
    extra_run: str | None = None  # the extra run, if it was accepted
    error: str | None = None


@dataclass
class Viewer:
    link: dict[str, str]
    render_ms: list[float] = field(default_factory=list)
    wait_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    final_progress: list[str] = field(default_factory=list)
    final_charts: int = 0


@dataclass
class RoomResult:
    size: RoomSize
    students: list[Student]
    viewers: list[Viewer]
    runs: dict[str, Any]  # queue_load._check_runs
    max_active: dict[str, int]  # the most runs each owner had queued or running at once
    cross_cancel: str  # what the cross-owner cancel did
    workers: tuple[float, float, bool]  # their start, end (epoch s), whether they timed out
    wall_s: float
    database: str = ""  # which database served the room, e.g. 'PostgreSQL 15.14 on this machine'
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# the room's runs and settings
# ---------------------------------------------------------------------------------------------


def comparison(seed: int) -> dict[str, RunConfig]:
    """One student's comparison: SGD, SAM-all and SAM-ON on a tiny synthetic run."""
    base = RunConfig(model="tiny_resnet", dataset="synthetic", train_subset=128, test_subset=64,
                     epochs=EPOCHS, batch_size=32, sharpness_samples=0, stats_bins=10,
                     log_every_s=0.2, device="cpu", seed=seed)
    configs = [base.replace(method="base"), base.replace(method="sam", scope="all"),
               base.replace(method="sam", scope="norm")]
    return {c.method_label(): c for c in configs}


def room_env(root: Path, limit: int, database_url: str | None = None) -> dict[str, str]:
    """The settings of the room's server: its own store and database (``database_url``, else
    SQLite in the store), the per-owner limit, no pool started by the app (the bench's workers
    train) and no automatic resume (a run interrupted by a crash must show as a problem, not be
    retried)."""
    env = {"SAMON_RUNS_DIR": str(root), "SAMON_AUTO_RESUME": "0",
           "SAMON_MAX_QUEUED_PER_OWNER": str(limit), "SAMON_START_WORKERS": "0"}
    if database_url:
        env[db.DATABASE_URL_ENV] = database_url
    return env


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (the AppTest sessions read their settings from it), without the
    caller's other SAMON_* settings; everything restored afterwards."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("SAMON_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ---------------------------------------------------------------------------------------------
# the actors: students, viewers, a sampler of the store
# ---------------------------------------------------------------------------------------------


def student(i: int, store: RunStore, settings: Any, start: threading.Barrier,
            queued: threading.Event) -> Student:
    """Register, queue a comparison with the own key, then try one run more."""
    me = Student(f"student{i:02d}")
    try:
        try:
            me.key = service.register_owner(me.name, store=store)
        finally:
            start.wait()  # all submit at once (a student who could not register too)
        t = time.perf_counter()
        me.group, me.run_ids = service.submit_group(comparison(seed=100 + i), owner=me.name,
                                                    owner_key=me.key, store=store,
                                                    settings=settings)
        me.submit_ms = (time.perf_counter() - t) * 1000
        queued.set()
        extra = comparison(seed=10_000 + i)["SGD"]  # a new config: a reused run is never refused
        try:
            me.extra_run = service.submit(extra, owner=me.name, owner_key=me.key, store=store,
                                          settings=settings)
        except service.LimitExceeded as exc:
            me.extra_refused = exc.limit
    except Exception as exc:  # reported as a problem, with the others' results kept
        me.error = f"{type(exc).__name__}: {exc}"
    return me


def cross_cancel(thief: Student, victim: Student, store: RunStore, settings: Any) -> str:
    """One student cancels another's run with their own key: 'refused' or what happened."""
    if not (thief.key and victim.run_ids):
        return "not tried: a student could not submit"
    try:
        return str(service.cancel(victim.run_ids[0], owner_key=thief.key, store=store,
                                  settings=settings))
    except service.NotAllowed:
        return "refused"


def sample_owners(store: RunStore, stop: threading.Event, out: dict[str, int]) -> None:
    """Until ``stop``: the most runs each owner had queued or running in one read of the
    database (one transaction: a consistent snapshot)."""
    active = {str(s) for s in ACTIVE_STATES}
    while not stop.is_set():
        counts: dict[str, int] = {}
        for row in db.run_rows(store.engine):
            if str(row["state"]) in active:
                counts[row["owner"]] = counts.get(row["owner"], 0) + 1
        for owner, n in counts.items():
            out[owner] = max(out.get(owner, 0), n)
        stop.wait(SAMPLE_EVERY_S)


def _errors(at: Any) -> list[str]:
    return [str(e.message) for e in at.exception]


def _run_timed(at: Any, lock: threading.Lock, me: Viewer) -> None:
    """One rerun of the session, in its turn; render time and wait recorded."""
    t0 = time.perf_counter()
    with lock:
        t1 = time.perf_counter()
        at.run()
        me.render_ms.append((time.perf_counter() - t1) * 1000)
    me.wait_ms.append((t1 - t0) * 1000)
    me.errors += _errors(at)


def viewer(me: Viewer, lock: threading.Lock, done: threading.Event,
           poll_s: tuple[float, float], seed: int) -> None:
    """An AppTest session on the Live page of ``me.link`` that reruns every ``poll_s`` until
    ``done``, then once more (after the shared caches expired) to read the final progress."""
    from streamlit.testing.v1 import AppTest

    rng = random.Random(seed)
    try:
        at = AppTest.from_file(APP, default_timeout=APPTEST_TIMEOUT_S)
        for name, value in me.link.items():
            at.query_params[name] = value
        with lock:  # not timed: the first run imports the pages (and plotly)
            at.run()
            if not at.exception:
                at.switch_page(LIVE_PAGE).run()
        me.errors += _errors(at)
        while not me.errors and not done.wait(rng.uniform(*poll_s)):
            _run_timed(at, lock, me)
        if not me.errors:
            time.sleep(1.5)  # the run list and records are cached for about a second
            _run_timed(at, lock, me)
            me.final_progress = [str(p.proto.text) for p in at.get("progress")]
            me.final_charts = len(at.get("plotly_chart"))
    except Exception as exc:  # a timed-out script run, a crash of the test harness
        me.errors.append(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------
# the room
# ---------------------------------------------------------------------------------------------


def _threads(targets: list[tuple[Any, tuple]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in targets]
    for t in threads:
        t.start()
    return threads


def _submit_phase(size: RoomSize, store: RunStore, settings: Any,
                  start_workers: Any) -> list[Student]:
    """Every student at once (a barrier); the workers start with the first queued comparison."""
    start, queued = threading.Barrier(size.students), threading.Event()
    results: list[Student | None] = [None] * size.students

    def one(i: int) -> None:
        results[i] = student(i, store, settings, start, queued)

    threads = _threads([(one, (i,)) for i in range(size.students)])
    started = queued.wait(timeout=size.timeout)
    if started:
        start_workers()
    for t in threads:
        t.join()
    if not started:  # late or nobody could queue: start them now (they exit when idle)
        start_workers()
    return [r for r in results if r is not None]


def _links(students: list[Student], n: int) -> list[dict[str, str]]:
    """The links of ``n`` students spread over the room (what each student's browser opens)."""
    ok = [s for s in students if s.group]
    picked = [ok[i * len(ok) // n] for i in range(n)] if ok else []
    return [{"owner": s.name, "key": s.key, "group": s.group} for s in picked]


def run_room(size: RoomSize, base: Path) -> RoomResult:
    """The whole room in a fresh run store under ``base`` (worker logs in ``base``), on a fresh
    database of ``size.engine``."""
    with database(size.engine) as url:
        return _run_room(size, base, url)


def _run_room(size: RoomSize, base: Path, url: str | None) -> RoomResult:
    root = base / "runs"
    store, env = RunStore(root, database_url=url), room_env(root, size.limit, url)
    settings = load_settings(environ=env)
    workers: list[tuple[float, float, bool]] = []
    done, stop = threading.Event(), threading.Event()

    def train() -> None:
        cmds = [_worker_cmd(root, "cpu", "--log-level", "warning")] * size.workers
        try:
            workers.append(_run_until_exit(cmds, _worker_env(env, "1"), base, size.timeout,
                                           "worker"))
        finally:  # the viewers stop even if the workers could not be started
            done.set()

    max_active: dict[str, int] = {}
    t0 = time.time()
    with environ(env):
        sampler = _threads([(sample_owners, (store, stop, max_active))])
        students = _submit_phase(size, store, settings, lambda: _threads([(train, ())]))
        verdict = cross_cancel(students[0], students[-1], store, settings)
        viewers = [Viewer(link) for link in _links(students, size.viewers)]
        lock = threading.Lock()
        watching = _threads([(viewer, (v, lock, done, size.poll_s, i))
                             for i, v in enumerate(viewers)])
        done.wait()  # the workers exited: every run ended (or they timed out)
        stop.set()
        for t in watching + sampler:
            t.join()
    if not workers:
        raise RuntimeError(f"the worker processes could not be started (logs in {base})")
    ids = [rid for s in students for rid in [*s.run_ids, s.extra_run] if rid]
    runs = _check_runs(ids, store, EPOCHS)
    result = RoomResult(size, students, viewers, runs, max_active, verdict, workers[0],
                        time.time() - t0, database_text(store))
    result.problems = problems(result, store)
    return result


# ---------------------------------------------------------------------------------------------
# checks and figures
# ---------------------------------------------------------------------------------------------


def extra_problem(me: Student, store: RunStore, limit: int) -> str | None:
    """Why the extra submit of ``me`` broke the limit: it must be refused by
    max_queued_per_owner, or accepted only when fewer than ``limit`` runs of the owner were
    still queued or running (some of the comparison had ended before it was created)."""
    if me.extra_refused is not None:
        if me.extra_refused != "max_queued_per_owner":
            return f"{me.name}: extra run refused by {me.extra_refused}"
        return None
    if me.extra_run is None:
        return f"{me.name}: extra submit neither refused nor queued"
    created = float(store.read_meta(me.extra_run)["created"])
    ended = [store.read_status(rid).get("ended") for rid in me.run_ids]
    still_active = sum(not isinstance(e, (int, float)) or e > created for e in ended)
    if still_active + 1 > limit:
        return f"{me.name}: extra run accepted with {still_active} runs active (limit {limit})"
    return None


def viewer_problem(v: Viewer, group_size: int) -> str | None:
    """A session that raised, never rerendered, or whose last render misses a finished run
    or shows no chart."""
    who = v.link["owner"]
    if v.errors:
        return f"Live page of {who}: {v.errors[0][:300]}"
    if not v.render_ms:
        return f"Live page of {who}: never rerendered"
    finished = sum("finished" in text for text in v.final_progress)
    if finished < group_size:
        return f"Live page of {who}: last render shows {v.final_progress}"
    if not v.final_charts:
        return f"Live page of {who}: last render shows no chart"
    return None


def problems(r: RoomResult, store: RunStore) -> list[str]:
    """Everything that went wrong in the room (empty: every check held)."""
    out = [f"{s.name}: {s.error}" for s in r.students if s.error]
    if r.workers[2]:
        out.append(f"workers timed out after {r.size.timeout:.0f} s")
    out += r.runs["problems"]
    expected = sum(len(s.run_ids) + (s.extra_run is not None) for s in r.students)
    if len(r.runs["train_s"]) != expected or expected < 3 * r.size.students:
        out.append(f"{len(r.runs['train_s'])} runs finished of {expected}")
    out += [p for s in r.students if (p := extra_problem(s, store, r.size.limit))]
    over = {o: n for o, n in r.max_active.items() if n > r.size.limit}
    if over:
        out.append(f"owners over the limit of {r.size.limit}: {over}")
    if r.cross_cancel != "refused":
        out.append(f"a student cancelled another's run with their own key: {r.cross_cancel}")
    if len(r.viewers) != r.size.viewers:
        out.append(f"{len(r.viewers)} Live sessions of {r.size.viewers}")
    out += [p for v in r.viewers if (p := viewer_problem(v, len(comparison(0))))]
    return out


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of ``values``; nan for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> str:
    """'median X, p95 Y, max Z' of millisecond values (the median is the p50)."""
    if not values:
        return "none measured"
    return (f"median {statistics.median(values):.0f}, p95 {percentile(values, 95):.0f}, "
            f"max {max(values):.0f} ms (n={len(values)})")


def report(r: RoomResult) -> list[str]:
    """The figures, with the hardware and versions."""
    s = r.size
    renders = [ms for v in r.viewers for ms in v.render_ms]
    waits = [ms for v in r.viewers for ms in v.wait_ms]
    start, end, _ = r.workers
    done = len(r.runs["train_s"])
    refused = sum(x.extra_refused is not None for x in r.students)
    lines = ["room load test", *_environment()]
    lines[-1] += f", streamlit {_version('streamlit')}"
    lines += [
        f"  setup    : {s.students} students x 3 tiny runs (tiny_resnet, synthetic, 128 train / "
        f"64 test images, {EPOCHS} epoch, batch 32), {s.workers} CPU workers x 1 thread, "
        f"database {r.database}, max_queued_per_owner {s.limit}; {len(r.viewers)} AppTest Live "
        f"sessions rerunning every {s.poll_s[0]:g}-{s.poll_s[1]:g} s, in turns",
        f"  submit   : a 3-run comparison per student, all at once: "
        f"{spread([x.submit_ms for x in r.students if x.submit_ms])}",
        f"  Live     : render under load {spread(renders)}; wait for a turn {spread(waits)}",
        f"  runs     : {done} finished ({done / (end - start) * 60:.1f} runs/min from worker "
        f"start to the last worker exit, {end - start:.1f} s); total wall {r.wall_s:.1f} s",
        f"  limits   : extra runs refused {refused}/{s.students}; most runs one owner had at once "
        f"{max(r.max_active.values(), default=0)}; cross-owner cancel {r.cross_cancel}",
        f"  load avg : {os.getloadavg()[0]:.2f} at the end (1 min)",
        f"  problems : {len(r.problems)}",
    ]
    return lines + [f"    {p}" for p in r.problems[:20]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--viewers", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=3, help="max_queued_per_owner (at least 3)")
    ap.add_argument("--engine", choices=ENGINES, default="sqlite",
                    help="the database: SQLite in the run store, or a throw-away PostgreSQL "
                         "server on this machine (Debian's postgresql)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="give up after this many s (1800; 7200 with --class-experiment)")
    ap.add_argument("--keep", action="store_true", help="keep the run store (printed)")
    ap.add_argument("--class-experiment", action="store_true",
                    help="every student adds a seed of a class experiment (bench/class_load.py)")
    ap.add_argument("--claim", default="accuracy", help="the class experiment's claim")
    ap.add_argument("--size", default="cpu", help="the class experiment's size")
    ap.add_argument("--epochs", type=int, default=None,
                    help="the class experiment's runs shrunk to this many epochs")
    args = ap.parse_args(argv)
    if args.class_experiment:
        return class_main(args)
    if args.limit < 3 or min(args.students, args.viewers, args.workers) < 1:
        ap.error("--limit must be at least 3 (one comparison) and the counts at least 1")
    size = RoomSize(args.students, args.viewers, args.workers, args.limit, args.timeout or 1800.0,
                    engine=args.engine)
    base = Path(tempfile.mkdtemp(prefix="samon-room-load-"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    result = run_room(size, base)
    print("\n".join(report(result)))
    if args.keep:
        print(f"  run store: {base / 'runs'}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if result.problems else 0


def class_main(args: argparse.Namespace) -> int:
    """``--class-experiment``: the class as one experiment (bench/class_load.py)."""
    from class_load import ClassSize, report, run_class

    if args.students < 1 or args.workers < 1 or (args.epochs is not None and args.epochs < 1):
        raise SystemExit("--students, --workers and --epochs must be at least 1")
    size = ClassSize(args.students, args.workers, args.claim, args.size, args.epochs,
                     args.timeout or 7200.0)
    base = Path(tempfile.mkdtemp(prefix="samon-class-load-"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    result = run_class(size, base)
    print("\n".join(report(result)))
    if args.keep:
        print(f"  run store: {base / 'runs'}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
