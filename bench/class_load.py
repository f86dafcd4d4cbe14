"""The class as one experiment under load (issue 23): ``bench/room_load.py --class-experiment``.

The teacher starts a class experiment (a claim at a size, ``claims.classroom``); ``--students``
threads each register a name and press "Add my seed" at once (``add_my_seed`` with their own
key: the next unused seed, chosen under the submit lock); ``--workers`` real worker processes
(``queue_load``'s, ``--exit-when-idle``) train the seeds, each seed's runs in lockstep. Meanwhile
the class verdict (``classroom.pooled_verdict``: the claim's own verdict on the pooled runs) is
read every ``POLL_S`` seconds; the figure is the wall time from the clicks to the first
*decided* verdict (consistent or not consistent, from finished runs only), or, when the runs end
without one, why not: the last verdict, the seeds it rests on and the seeds the claims' power
simulation asks for.

``--epochs E`` shrinks the size's runs to E epochs for a quick look: the experiment's configs are
then the size's with E epochs (patched in this process only; the workers train whatever configs
the run folders hold), and the seed spreads behind the verdict's floors and the power are still
those recorded for the full size. Checks: every student got a different seed (0..N-1), every run
is under its student's name and finished with all its epochs.

Usage: python bench/room_load.py --class-experiment [--students 30] [--workers 2]
       [--claim accuracy] [--size cpu] [--epochs E] [--timeout 7200] [--keep]
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queue_load import _check_runs, _environment, _run_until_exit, _worker_cmd, _worker_env

from samon_core import service
from samon_core.claims import CONSISTENT, NOT_CONSISTENT, power, runsets
from samon_core.claims.classroom import add_my_seed, pooled_verdict, start_experiment
from samon_core.runs.store import RunStore
from samon_core.service.settings import load_settings

POLL_S = 2.0


@dataclass(frozen=True)
class ClassSize:
    students: int = 30
    workers: int = 2
    claim: str = "accuracy"
    size: str = "cpu"
    epochs: int | None = None  # None: the size's own
    timeout: float = 7200.0


@dataclass
class Click:
    name: str
    seed: int | None = None
    run_ids: tuple[str, ...] = ()
    submit_ms: float = 0.0
    error: str | None = None


@dataclass
class ClassResult:
    size: ClassSize
    epochs: int
    size_epochs: int  # the size's own
    clicks: list[Click]
    timeline: list[tuple[float, int, str, bool]] = field(default_factory=list)  # t, seeds, v, p
    decided: tuple[float, int, str] | None = None  # (seconds after the clicks, seeds, verdict)
    final: tuple[int, str, str] = (0, "", "")  # seeds, verdict, sentence
    runs: dict[str, Any] = field(default_factory=dict)
    workers: tuple[float, float, bool] = (0.0, 0.0, False)
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)


def shrink_epochs(size: str, epochs: int | None) -> tuple[int, int]:
    """(the epochs of the size's runs in this process, the size's own): ``epochs`` replaces
    them when given."""
    own = runsets.BASES[size].epochs
    if epochs is not None:
        runsets.BASES[size] = runsets.BASES[size].replace(epochs=epochs)
    return runsets.BASES[size].epochs, own


def _click(i: int, store: RunStore, settings: Any, barrier: threading.Barrier) -> Click:
    me = Click(f"pupil{i:02d}")
    try:
        try:
            key = service.register_owner(me.name, store=store, settings=settings)
        finally:
            barrier.wait()  # every student clicks at once
        t = time.perf_counter()
        got = add_my_seed(owner=me.name, owner_key=key, store=store, settings=settings)
        me.submit_ms = (time.perf_counter() - t) * 1000
        me.seed, me.run_ids = got.seed, got.run_ids
    except Exception as exc:  # reported as a problem
        me.error = f"{type(exc).__name__}: {exc}"
    return me


def _clicks(n: int, store: RunStore, settings: Any) -> list[Click]:
    barrier = threading.Barrier(n)
    out: list[Click | None] = [None] * n

    def one(i: int) -> None:
        out[i] = _click(i, store, settings, barrier)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [c for c in out if c is not None]


def _watch(result: ClassResult, store: RunStore, experiment: Any, t0: float,
           done: threading.Event) -> None:
    """Read the class verdict every ``POLL_S`` until ``done``; the first decided one counts."""
    while True:
        finished = done.is_set()
        p, got = pooled_verdict(store, experiment)
        v = got.verdict
        word = "none yet" if v is None else v.verdict
        t = time.time() - t0
        result.timeline.append((t, len(p.seeds), word, bool(v and v.provisional)))
        if result.decided is None and v is not None and not v.provisional \
                and v.verdict in (CONSISTENT, NOT_CONSISTENT):
            result.decided = (t, len(p.seeds), v.verdict)
        if finished:
            result.final = (len(p.seeds), word, "" if v is None else v.sentence)
            return
        done.wait(POLL_S)


def run_class(size: ClassSize, base: Path) -> ClassResult:
    """The whole class in a fresh run store under ``base`` (worker logs in ``base``)."""
    from room_load import environ, room_env  # the same server settings as the room bench

    root = base / "runs"
    store = RunStore(root)
    token = secrets.token_urlsafe(16)
    env = {**room_env(root, 3), "SAMON_TEACHER_TOKEN": token}
    settings = load_settings(environ=env)
    epochs, own = shrink_epochs(size.size, size.epochs)
    result = ClassResult(size, epochs, own, [])
    with environ(env):
        experiment = start_experiment(size.claim, size.size, teacher_token=token, store=store,
                                      settings=settings)
        t0 = time.time()
        result.clicks = _clicks(size.students, store, settings)
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(result, store, experiment, t0, done),
                                   daemon=True)
        watcher.start()
        cmds = [_worker_cmd(root, "cpu", "--log-level", "warning")] * size.workers
        result.workers = _run_until_exit(cmds, _worker_env(env, "1"), base, size.timeout,
                                         "worker")
        done.set()
        watcher.join()
    result.wall_s = time.time() - t0
    ids = [rid for c in result.clicks for rid in c.run_ids]
    result.runs = _check_runs(ids, store, epochs)
    result.problems = problems(result, store)
    return result


def problems(r: ClassResult, store: RunStore) -> list[str]:
    out = [f"{c.name}: {c.error}" for c in r.clicks if c.error]
    seeds = sorted(c.seed for c in r.clicks if c.seed is not None)
    if seeds != list(range(len(r.clicks))):
        out.append(f"seeds handed out: {seeds} (expected 0..{len(r.clicks) - 1}, all different)")
    for c in r.clicks:
        owners = {store.read_meta(rid).get("owner") for rid in c.run_ids}
        if c.run_ids and owners != {c.name}:
            out.append(f"{c.name}: runs recorded under {owners}")
    if r.workers[2]:
        out.append(f"workers timed out after {r.size.timeout:.0f} s")
    return out + r.runs.get("problems", [])


def report(r: ClassResult) -> list[str]:
    s = r.size
    shrunk = f"{r.epochs} epochs" + ("" if r.epochs == r.size_epochs else
                                     f", shrunk from the size's {r.size_epochs}")
    submit = sorted(c.submit_ms for c in r.clicks if c.submit_ms)
    lines = ["class experiment load test", *_environment()]
    lines += [
        f"  setup    : {s.students} students x one seed of claim {s.claim} at the {s.size} size "
        f"({shrunk}), {s.workers} CPU worker{'' if s.workers == 1 else 's'} x 1 thread, "
        "SQLite database",
        f"  add seed : all at once; latency median {submit[len(submit) // 2]:.0f} ms, max "
        f"{submit[-1]:.0f} ms; seeds {sorted(c.seed for c in r.clicks if c.seed is not None)}"
        if submit else "  add seed : nobody could add a seed",
    ]
    if r.decided is not None:
        t, n, v = r.decided
        lines.append(f"  verdict  : DECIDED ({v}) {t:.0f} s after the clicks, resting on {n} "
                     "seeds")
    else:
        needed = power.seeds_needed(s.claim, s.size)
        lines.append(f"  verdict  : not decided; after the last run the class verdict was "
                     f"'{r.final[1]}' on {r.final[0]} seeds (the power simulation asks for "
                     f"{needed if needed else 'more than ' + str(power.SEARCH[-1])} seeds for "
                     f"80% at the paper's effect at this size)")
    lines.append(f"             {r.final[2][:600]}")
    counts = [(round(t), n, v) for t, n, v, _ in r.timeline]
    changes = [c for i, c in enumerate(counts) if i == 0 or c[1:] != counts[i - 1][1:]]
    lines.append("  timeline : " + "; ".join(f"{t} s: {n} seed{'' if n == 1 else 's'}, {v}"
                                         for t, n, v in changes))
    done = len(r.runs.get("train_s", []))
    start, end, _ = r.workers
    lines += [f"  runs     : {done} finished of {sum(len(c.run_ids) for c in r.clicks)}; workers "
              f"{end - start:.0f} s; total wall {r.wall_s:.0f} s",
              f"  problems : {len(r.problems)}"]
    return lines + [f"    {p}" for p in r.problems[:20]]
