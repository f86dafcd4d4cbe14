"""The class experiment: every student trains one seed of the same claim, and the class verdict
pools all of them. A claim that one student's three seeds cannot settle (at the cpu size seeds
differ by 3.5-5 points, the paper's gaps are 0.2-3) may be settled by thirty.

* **Start, stop, provisional** (``start_experiment``, ``stop_experiment``, ``set_provisional``):
  the teacher only; the experiment is kept in the room (``service.room.ClassExperiment``), and
  ``set_room`` checks the teacher token, so the server decides, not a page.
* **Add my seed** (``add_my_seed``): queues the claim's runs at the experiment's size with the
  smallest seed none of its configs has used in the store (any state, any owner), under the
  caller's own name, through ``service.submit_group``: the caller's key, the limits, the room's
  locks and the fair queue apply as to any launch. The seed is chosen inside the admission's
  transaction (``pick_seed``, from every run's config hash that transaction sees), so two
  students clicking at once get different seeds.
* **The pool** (``pool``): honest by construction. A run counts only if its config, seed aside,
  is exactly one of the experiment's (``config_hash`` of the config with seed 0, as the store's
  reuse compares runs), it was created before the experiment stopped, and it finished (runs
  still training count only when the teacher chose ``provisional``). Only seeds for which every
  method of the claim has such a run count; one run per method and seed is used (the claims'
  own rule, ``collect.match``), so a duplicate of a seed counts once. The verdict itself is the
  claim's (``collect``), on exactly these runs: whoever trained them, it is the verdict the
  same runs would get under one owner.

No torch, no streamlit.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from samon_core.claims.collect import PARTIAL_STATES, Collected, StoredRun, collect, index_runs
from samon_core.claims.data import get_claim
from samon_core.runs.config import RunConfig
from samon_core.runs.owners import NotAllowed
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.room import (
    CLAIM_PREFIX,
    ClassExperiment,
    Room,
    identify,
    read_room,
    set_room,
)
from samon_core.service.settings import Settings, load_settings
from samon_core.service.submit import submit_group

MAX_SEED = 1_000_000  # far beyond any class: a bound for the search of the next unused seed


class NoExperiment(ValueError):
    """No class experiment is running (none started, stopped, or a replay)."""


@dataclass(frozen=True)
class SeedAdded:
    """What ``add_my_seed`` queued: the seed, the comparison group and its run ids."""

    claim: str
    size: str
    seed: int
    group: str
    run_ids: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# the teacher: start, stop, provisional
# ---------------------------------------------------------------------------------------------


def _require_teacher(teacher_token: str | SecretStr | None, store: RunStore,
                     s: Settings) -> None:
    if not identify(teacher_token=teacher_token, store=store, settings=s).is_teacher:
        raise NotAllowed("only the teacher (with the teacher token) can start or stop the class "
                         "experiment")


def _save(room: Room, experiment: ClassExperiment | None, teacher_token: str | SecretStr | None,
          store: RunStore, s: Settings) -> ClassExperiment | None:
    new = Room(**{**room.model_dump(), "experiment": None if experiment is None
                  else experiment.model_dump()})
    set_room(new, teacher_token=teacher_token, store=store, settings=s)
    return new.experiment


def start_experiment(claim: str, size: str, *, provisional: bool = False,
                     teacher_token: str | SecretStr | None, store: RunStore | None = None,
                     settings: Settings | None = None,
                     clock: Callable[[], float] = time.time) -> ClassExperiment:
    """Start a class experiment on ``claim`` at ``size`` (replacing any earlier one; its runs
    stay in the store). ``NotAllowed`` without the teacher token, ``ValueError`` for an unknown
    claim or size."""
    store, s = store_or_default(store), settings or load_settings()
    _require_teacher(teacher_token, store, s)
    experiment = ClassExperiment(claim=claim, size=size, started_at=float(clock()),
                                 provisional=bool(provisional))
    saved = _save(read_room(store), experiment, teacher_token, store, s)
    assert saved is not None
    return saved


def _current(store: RunStore) -> tuple[Room, ClassExperiment]:
    room = read_room(store)
    if room.experiment is None:
        raise NoExperiment("no class experiment has been started")
    return room, room.experiment


def stop_experiment(*, teacher_token: str | SecretStr | None, store: RunStore | None = None,
                    settings: Settings | None = None,
                    clock: Callable[[], float] = time.time) -> ClassExperiment:
    """Stop the class experiment: no more seeds are added; its verdict keeps the runs created
    before now (those still training finish and count). Stopping a stopped one changes
    nothing."""
    store, s = store_or_default(store), settings or load_settings()
    _require_teacher(teacher_token, store, s)
    room, experiment = _current(store)
    if experiment.stopped_at is not None:
        return experiment
    stopped = experiment.model_copy(update={"stopped_at": float(clock())})
    saved = _save(room, ClassExperiment(**stopped.model_dump()), teacher_token, store, s)
    assert saved is not None
    return saved


def set_provisional(provisional: bool, *, teacher_token: str | SecretStr | None,
                    store: RunStore | None = None,
                    settings: Settings | None = None) -> ClassExperiment:
    """Whether runs still training count (provisionally) in the class verdict."""
    store, s = store_or_default(store), settings or load_settings()
    _require_teacher(teacher_token, store, s)
    room, experiment = _current(store)
    changed = ClassExperiment(**{**experiment.model_dump(), "provisional": bool(provisional)})
    saved = _save(room, changed, teacher_token, store, s)
    assert saved is not None
    return saved


# ---------------------------------------------------------------------------------------------
# a student: add my seed
# ---------------------------------------------------------------------------------------------


def experiment_configs(experiment: ClassExperiment) -> dict[str, RunConfig]:
    """Label -> config (seed 0) of the runs one seed of the experiment trains."""
    return get_claim(experiment.claim).runs(experiment.size)


def next_seed(configs: Sequence[RunConfig], used_hashes: set[str]) -> int:
    """The smallest seed s >= 0 for which no config with seed s has its ``config_hash`` in
    ``used_hashes`` (a run of any state and any owner uses its seed)."""
    for seed in range(MAX_SEED):
        if not any(c.replace(seed=seed).config_hash() in used_hashes for c in configs):
            return seed
    raise ValueError(f"every seed below {MAX_SEED} is used")  # pragma: no cover


def add_my_seed(*, owner: str, owner_key: str | None = None,
                teacher_token: str | SecretStr | None = None, store: RunStore | None = None,
                settings: Settings | None = None) -> SeedAdded:
    """Queue the running experiment's runs with the next unused seed under ``owner`` (who must
    prove the name as for any launch: ``service.submit_group``). ``NoExperiment`` when none is
    running; ``LimitExceeded`` / ``RoomLocked`` / ``NotAllowed`` as for any launch."""
    store = store_or_default(store)
    experiment = read_room(store).experiment
    if experiment is None or not experiment.running:
        raise NoExperiment("no class experiment is running: the teacher starts one in the Room")
    configs = experiment_configs(experiment)

    def pick(rows: list) -> int:  # inside the admission's transaction (submit.py)
        return next_seed(list(configs.values()), {r.config_hash for r in rows if r.config_hash})

    group, ids = submit_group(configs, owner=owner, preset=f"{CLAIM_PREFIX}{experiment.claim}",
                              store=store, settings=settings, owner_key=owner_key,
                              teacher_token=teacher_token, pick_seed=pick)
    seed = store.read_config(ids[0]).seed
    return SeedAdded(experiment.claim, experiment.size, seed, group, tuple(ids))


# ---------------------------------------------------------------------------------------------
# the pool
# ---------------------------------------------------------------------------------------------


def seedless_hash(config: RunConfig) -> str:
    """The config's ``config_hash`` with the seed taken out (seed 0 for every run)."""
    return config.replace(seed=0).config_hash()


@dataclass(frozen=True)
class Pool:
    """The runs the class verdict rests on: ``index`` (the runs of the counted seeds, as
    ``collect`` takes them) and the counted ``seeds``; the seeds left out because a run of
    theirs is still training (or, provisional, has no epoch yet): ``waiting``; those with a
    method's run missing, failed or cancelled: ``incomplete``; and how many runs were a second
    run of one method and seed (counted once): ``duplicates``."""

    experiment: ClassExperiment
    index: tuple[StoredRun, ...]
    seeds: tuple[int, ...]
    waiting: tuple[int, ...] = ()
    incomplete: tuple[int, ...] = ()
    duplicates: int = 0


def _of_experiment(index: Sequence[StoredRun], experiment: ClassExperiment
                   ) -> list[tuple[str, StoredRun]]:
    """(method, run) of every run whose config is one of the experiment's, seed aside, created
    before the experiment stopped (any state)."""
    configs = get_claim(experiment.claim).method_configs(experiment.size)
    targets = {seedless_hash(cfg): m for m, cfg in configs.items()}
    cheap = {(c.model, c.dataset, c.epochs) for c in configs.values()}
    out = []
    for run in index:
        c = run.config
        if (c.model, c.dataset, c.epochs) not in cheap:  # most runs: no hash needed
            continue
        if experiment.stopped_at is not None and run.created > experiment.stopped_at:
            continue
        method = targets.get(seedless_hash(c))
        if method is not None:
            out.append((method, run))
    return out


def pool(store: RunStore, experiment: ClassExperiment,
         index: Sequence[StoredRun] | None = None, *, without: frozenset[int] = frozenset()
         ) -> Pool:
    """The runs the class verdict rests on (module doc); seeds in ``without`` are left out as
    waiting (``pooled_verdict``: runs counted provisionally before their first epoch)."""
    methods = set(get_claim(experiment.claim).methods)
    runs = _of_experiment(index_runs(store) if index is None else index, experiment)
    counted = [(m, r) for m, r in runs if r.state == RunState.FINISHED
               or (experiment.provisional and r.state in PARTIAL_STATES)]
    have: dict[int, set[str]] = {}
    for m, r in counted:
        have.setdefault(r.config.seed, set()).add(m)
    complete = {s for s, ms in have.items() if methods <= ms} - without
    active = {r.config.seed for _, r in runs if r.state in PARTIAL_STATES} | set(without)
    waiting = active - complete
    incomplete = {r.config.seed for _, r in runs} - complete - waiting
    per_key = Counter((m, r.config.seed) for m, r in counted if r.config.seed in complete)
    return Pool(experiment, tuple(r for _, r in counted if r.config.seed in complete),
                tuple(sorted(complete)), tuple(sorted(waiting)), tuple(sorted(incomplete)),
                sum(n - 1 for n in per_key.values()))


def pooled_verdict(store: RunStore, experiment: ClassExperiment,
                   index: Sequence[StoredRun] | None = None) -> tuple[Pool, Collected]:
    """The pool and the claim's own verdict on its runs (``claims.collect``: exactly what
    ``python -m samon_core claim verdict`` gives for the same runs). A seed counted
    provisionally whose runs have no epoch yet is moved to ``waiting`` (it would add nothing
    but a number to the seed count)."""
    index = index_runs(store) if index is None else index
    p = pool(store, experiment, index)
    got = collect(store, experiment.claim, experiment.size, index=list(p.index))
    empty = frozenset(seed for (_, seed), done in got.epochs_done.items() if done <= 0)
    if empty:
        p = pool(store, experiment, index, without=empty)
        got = collect(store, experiment.claim, experiment.size, index=list(p.index))
    return p, got
