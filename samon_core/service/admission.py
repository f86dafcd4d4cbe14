"""What gets into the queue, decided in the transaction that inserts it (issue 24).

``admit`` checks the caller's proof of their name, the room's locks and the queue limits against
the rows its own transaction sees, reuses identical runs and inserts the rest, all in one
transaction that ``serialize`` orders after every other admission and registration: ten
students clicking at once can never overfill a limit, a name registered a moment ago cannot
receive runs queued without its key, and no submit lock or store scan is needed.
``request_slices`` asks a worker for a finished run's landscape slices, once at a time.
Registering names is ``runs/ownerkeys.py`` (``register_owner`` / ``owner_of_key`` below only
pass to it).

**Reuse** (``reuse=True``): a request whose config (seed included) equals a run's gets that run
instead of a new one: the newest finished run; else, with ``share_active``, a running one, else
the one queued longest; never a run whose cancel is pending (its requester is leaving it). The
caller joins it as one more requester. Two requests of one call with one config are one run.
"""


from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from samon_core.catalog import DATASET_SIZES, MODELS
from samon_core.runs import ownerkeys
from samon_core.runs.config import RunConfig
from samon_core.runs.database import (
    DatabaseUnavailable,
    owners,
    reading,
    requesters,
    requests,
    room_body,
    runs,
    serialize,
    writing,
)
from samon_core.runs.io import store_error
from samon_core.runs.messages import clip
from samon_core.runs.owners import NotAllowed, normalize_owner_name
from samon_core.runs.redact import display_url, redact
from samon_core.runs.states import ACTIVE_STATES, RunState
from samon_core.runs.store import RunStore
from samon_core.service.settings import DevicePolicy, Settings, env_name, load_settings

_ACTIVE = [s.value for s in ACTIVE_STATES]


@dataclass(frozen=True)
class NewRun:
    """A run to admit: its id, the config's hash and device, the comparison it belongs to.
    ``run_id=None``: the caller expects an identical run to reuse and made no folder for this
    one (``NoRunToReuse`` when there is none)."""

    run_id: str | None
    config_hash: str
    device: str = "auto"
    group: str | None = None


@dataclass(frozen=True)
class QueueLimits:
    """The queue limits of ``settings`` (0 = no limit)."""

    max_queue: int = 0
    max_queued_per_owner: int = 0


@dataclass
class Admission:
    """What ``admit`` did: the runs inserted, the identical runs reused (new run id -> the
    existing run's id), the run each request got (in order) and the state of each run that was
    reused when it was joined."""

    inserted: list[str] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)


class NoRunToReuse(LookupError):
    """A request sent without a folder (``run_id=None``) found no run to reuse: it was
    cancelled or deleted since the caller looked. Nothing was admitted; make its folder and
    admit again."""


def _check_queue(conn: Connection, owner: str, n_new: int, limits: QueueLimits) -> None:
    if n_new <= 0:
        return
    if limits.max_queue:
        waiting = conn.scalar(sa.select(sa.func.count()).where(runs.c.state == RunState.QUEUED))
        if waiting + n_new > limits.max_queue:
            raise LimitExceeded("max_queue", limits.max_queue,
                                f"{waiting} runs are waiting and this request adds {n_new}")
    if limits.max_queued_per_owner:
        # the runs it owns (first requester), as the files-era limit counted them: joining a
        # run someone else queued adds no work to the queue
        active = conn.scalar(sa.select(sa.func.count()).where(
            runs.c.owner == owner, runs.c.state.in_(_ACTIVE)))
        if active + n_new > limits.max_queued_per_owner:
            raise LimitExceeded("max_queued_per_owner", limits.max_queued_per_owner,
                                f"{clip(owner)} has {active} runs queued or running and this "
                                f"request adds {n_new}")


def reusable(conn: Connection, hashes: Iterable[str], *, share_active: bool = True
             ) -> dict[str, tuple[str, str]]:
    """config hash -> (run id, state) of the run an identical request gets instead of a new
    one (see the module docstring), for each of ``hashes`` that has one; one query."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    states = [RunState.FINISHED.value, *(_ACTIVE if share_active else ())]
    rows = conn.execute(sa.select(runs.c.run_id, runs.c.config_hash, runs.c.state,
                                  runs.c.created, runs.c.queued_at, runs.c.cancel_requested)
                        .where(runs.c.config_hash.in_(wanted), runs.c.state.in_(states)))
    finished: dict[str, Any] = {}  # the newest finished run
    active: dict[str, Any] = {}  # a running one, else the one queued longest
    for row in rows:
        h = row.config_hash
        if row.state == RunState.FINISHED:
            if h not in finished or _newer(row) > _newer(finished[h]):
                finished[h] = row
        elif not row.cancel_requested and (h not in active or _first(row) < _first(active[h])):
            active[h] = row  # (a run whose cancel is pending: its requester is leaving it)
    return {h: (row.run_id, str(row.state)) for h, row in {**active, **finished}.items()}


def _newer(row: Any) -> tuple[float, str]:
    return (row.created, row.run_id)


def _first(row: Any) -> tuple[bool, float, str]:
    waited = row.queued_at if row.queued_at is not None else row.created
    return (row.state != RunState.RUNNING, waited, row.run_id)


def reusable_hashes(engine: Engine, hashes: Iterable[str], *, share_active: bool = True
                    ) -> set[str]:
    """Which of ``hashes`` have a run to reuse now (a read: the caller makes no folder for
    those; ``admit`` decides again in its transaction)."""
    with reading(engine) as conn:
        return set(reusable(conn, hashes, share_active=share_active))


def run_count(engine: Engine) -> int:
    """How many runs the database holds."""
    with reading(engine) as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(runs)) or 0)


# SQLite's words for a database it cannot write (its driver gives no errno)
_SQLITE_ERRNOS = (("readonly", errno.EROFS), ("read-only", errno.EROFS),
                  ("disk is full", errno.ENOSPC), ("unable to open", errno.EACCES),
                  ("disk i/o error", errno.EIO))


def _why_not_writable(root: Path | None) -> int | None:
    """EROFS / ENOSPC when the file system of ``root`` is read-only or full (SQLite reports
    both as 'unable to open' or 'disk I/O error' at times), else None."""
    if root is None:
        return None
    try:
        fs = os.statvfs(root)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return errno.EROFS
    return errno.ENOSPC if fs.f_bavail == 0 else None


@contextlib.contextmanager
def store_errors(action: str, store: RunStore | None = None) -> Iterator[None]:
    """A store or database that cannot be written (read-only, full disk, permissions) as one
    ``StoreUnavailable`` line naming ``action`` (``store``: the run store, whose file system is
    asked when SQLite's own words are vague, and whose database is named); a database that
    does not answer (a PostgreSQL server down, a lock waited for too long) as one
    ``DatabaseUnavailable`` line, its URL without password, so a page says it instead of
    failing; ``FileNotFoundError`` (no such run) and every other error pass as they are."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise store_error(exc, action) from exc
    except sa.exc.OperationalError as exc:
        text = str(exc.orig or exc).lower()
        code = next((code for words, code in _SQLITE_ERRNOS if words in text), None)
        if code is None:
            url = store.database_url if store is not None else ""
            why = redact(str(exc.orig or exc).splitlines()[0], url)
            raise DatabaseUnavailable(f"cannot {action} now: the database {display_url(url)} "
                                      f"did not answer ({why[:300]})") from None
        code = _why_not_writable(store.root if store is not None else None) or code
        raise store_error(OSError(code, os.strerror(code)), action) from None


# A claim's comparisons (``claim run``: one group per claim, size and seed) are named with this
# prefix. They are shared: whoever trains the claim's runs (the command line's ``cli``, a
# registered name with its key, the teacher) joins the same one, as ``share_active`` shares one
# identical run among its requesters, so the group rule below cannot make a second claim run
# refuse the first one's group. To keep the rule whole for everyone else, the prefix is
# reserved: a submit (the app's students) may neither start nor join a group with it, so nobody
# can squat a claim's group before the claim runs, nor slip runs into it.
CLAIM_GROUP_PREFIX = "claim-"


def _check_groups(conn: Connection, owner: str, new: Sequence[NewRun], claim: bool) -> None:
    """``NotAllowed`` when a run would join a comparison another owner put runs in, or a
    claim's comparison without being a claim's run (``claim``: this admission is ``claim
    run``'s, and every group it names must be a claim's, which any owner may join)."""
    asked = {run.group for run in new if run.group}
    reserved = sorted(g for g in asked if g.startswith(CLAIM_GROUP_PREFIX))
    if claim:
        if len(reserved) != len(asked):
            raise ValueError(f"a claim's runs join only claims' comparisons "
                             f"({CLAIM_GROUP_PREFIX}...); got {clip(sorted(asked))}")
        return
    if reserved:
        raise NotAllowed(f"the comparison {clip(reserved[0])} is a claim's: only `claim run` "
                         f"adds runs to comparisons named {CLAIM_GROUP_PREFIX}...; leave group "
                         "empty to start your own")
    if not asked:
        return
    other = conn.execute(sa.select(requesters.c.run_group).where(
        requesters.c.run_group.in_(sorted(asked)), requesters.c.owner != owner).limit(1)).first()
    if other is not None:
        raise NotAllowed(f"the comparison {clip(other.run_group)} is another owner's: runs join "
                         "only their owner's comparisons; leave group empty to start your own")


def taken_configs(conn: Connection) -> list[Any]:
    """Every run's (run_id, config_hash, state), as this transaction sees them: what a
    ``choose`` hook picks from (e.g. the next seed no run has used)."""
    return list(conn.execute(sa.select(runs.c.run_id, runs.c.config_hash, runs.c.state)))


def admit(engine: Engine, owner: str,
          new: Sequence[NewRun] | Callable[[Connection], Sequence[NewRun]],
          limits: QueueLimits, *,
          check_room: Callable[[Any], None] | None = None,
          check_owner: Callable[[str | None], None] | None = None,
          reuse: bool = True, share_active: bool = True, join_any: bool = False,
          claim: bool = False, now: float | None = None) -> Admission:
    """Queue ``new`` runs for ``owner`` in ONE transaction: the owner's proof (``check_owner``
    gets the name's stored key digest, None for a name nobody registered, and raises when the
    caller's proof no longer holds), the room's locks (``check_room`` gets the stored room,
    ``database.room_body``, and raises to refuse), whose the comparisons are (a run joins only
    its owner's group, unless ``join_any``: the teacher; ``claim``: the runs of ``claim run``,
    whose groups are the claim's shared ones, ``CLAIM_GROUP_PREFIX``, which nobody else may
    join) and the queue limits are checked against the rows this transaction sees, identical
    runs are reused (also within the request), the rest inserted. Every run that is asked for
    comes in here: ``submit``, ``submit_group`` (the app, the class experiment), ``samon run``
    and ``claim run`` (``submit.train_now``); only records of runs trained elsewhere (a class
    replay, a direct ``train`` call) are written by the store's ``create_run``.
    ``new`` may be a function of the transaction's connection, called after the checks of the
    owner and the room (e.g. to pick a seed nobody has: ``taken_configs``). Concurrent
    admissions are serialised (SQLite's write lock; PostgreSQL's advisory lock), so ten racing
    submitters can never overfill a limit. A refusal raises and inserts nothing. ``owner`` is
    taken in normal form (``ValueError`` for a text that is no name)."""
    owner = normalize_owner_name(owner)
    now = time.time() if now is None else now
    out = Admission()
    with writing(engine) as conn:
        serialize(conn)
        if check_owner is not None:
            check_owner(conn.scalar(sa.select(owners.c.digest).where(owners.c.name == owner)))
        if check_room is not None:
            check_room(room_body(conn))
        wanted = list(new(conn) if callable(new) else new)
        if not join_any:
            _check_groups(conn, owner, wanted, claim)
        fresh: list[NewRun] = []
        first: dict[str, str] = {}  # config hash -> the run of this request that has it
        found = reusable(conn, [run.config_hash for run in wanted],
                         share_active=share_active) if reuse else {}
        for run in wanted:
            existing = first.get(run.config_hash) if reuse else None
            if existing is None and run.config_hash in found:
                existing, state = found[run.config_hash]
                out.states[existing] = state
            if existing is None:
                if run.run_id is None:
                    raise NoRunToReuse(run.config_hash)
                fresh.append(run)
                first[run.config_hash] = existing = run.run_id
            elif run.run_id is not None and run.run_id != existing:
                out.reused[run.run_id] = existing
            out.run_ids.append(existing)
        _check_queue(conn, owner, len(fresh), limits)
        for run in fresh:
            conn.execute(runs.insert().values(
                run_id=run.run_id, config_hash=run.config_hash, owner=owner, run_group=run.group,
                device=run.device, state=RunState.QUEUED.value, created=now, queued_at=now,
                updated=now))
            out.inserted.append(run.run_id)
        pairs = zip(out.run_ids, wanted, strict=True)
        _join(conn, owner, [(rid, run.group or "") for rid, run in pairs], now)
    return out


def _join(conn: Connection, owner: str, wanted: list[tuple[str, str]], now: float) -> None:
    """Record ``owner`` as a requester of each (run, group) it does not hold yet."""
    ids = {rid for rid, _ in wanted}
    have = set(conn.execute(sa.select(requesters.c.run_id, requesters.c.run_group).where(
        requesters.c.owner == owner, requesters.c.run_id.in_(ids))).all())
    for run_id, group in sorted(set(wanted) - have):
        conn.execute(requesters.insert().values(run_id=run_id, owner=owner, run_group=group,
                                                time=now))


# --- names: runs/ownerkeys.py is their home ------------------------------------------------


def register_owner(engine: Engine, name: str, *, max_per_hour: int = 0,
                   now: float | None = None) -> str:
    """``ownerkeys.register`` (the clock defaulting to now)."""
    return ownerkeys.register(engine, name, time.time() if now is None else now,
                              max_per_hour=max_per_hour)


owner_of_key = ownerkeys.owner_of_key


# --- requests: landscape slices of a finished run ------------------------------------------


def request_slices(engine: Engine, run_id: str, payload: Mapping[str, Any], *,
                   now: float | None = None) -> int:
    """Ask a worker for ``run_id``'s slices (``payload``: points, radius, who asked); one
    pending request per run (``ValueError`` otherwise, or for a run that is not finished)."""
    now = time.time() if now is None else now
    with writing(engine) as conn:
        state = conn.scalar(sa.select(runs.c.state).where(runs.c.run_id == run_id))
        if state != RunState.FINISHED:
            raise ValueError(f"run {clip(run_id)} is {state or 'unknown'}, not finished: "
                             "slices need its final checkpoint")
        pending = sa.select(requests.c.id).where(requests.c.run_id == run_id,
                                                 requests.c.kind == "slices",
                                                 requests.c.done.is_(False))
        if conn.scalar(pending) is not None:
            raise ValueError(f"slices of run {clip(run_id)} are already being computed")
        return conn.execute(requests.insert().values(
            run_id=run_id, kind="slices", payload=json.dumps(dict(payload), sort_keys=True),
            created=now)).inserted_primary_key[0]


# --- the limits of a shared server, checked wherever work starts --------------------------
# The limits of a shared server (settings.py), checked wherever work starts.
#
# ``submit`` checks them before anything is created (the queue limits in the transaction that
# admits the runs: admission.py); ``samon run`` before it creates a run folder;
# a worker before it trains a run (a run that never passed them, or was queued under laxer
# settings, ends 'failed' with the reason). A request over a limit raises ``LimitExceeded`` naming
# the limit, its value and the environment variable that sets it. No torch: model sizes come from
# the catalog. The teacher's room locks (room.py) raise a ``LimitExceeded`` too.


MAX_RUNS_PER_REQUEST = 1000  # one comparison: a few methods times a few seeds, never thousands


class LimitExceeded(ValueError):
    """A request over a server limit. ``limit`` is the setting's name, ``value`` its value; the
    message names both (and the environment variable that sets it)."""

    def __init__(self, limit: str, value: Any, detail: str, outcome: str = "nothing was queued"):
        self.limit = limit
        self.value = value
        super().__init__(self.describe(limit, value, detail, outcome))

    @staticmethod
    def describe(limit: str, value: Any, detail: str, outcome: str) -> str:
        """The message (a subclass for limits that are not settings says it its own way)."""
        return (f"limit {limit} = {value} (setting {limit!r}, ${env_name(limit)}): {detail}; "
                f"{outcome}")


def train_images(config: RunConfig) -> int:
    """Training images a run uses (``train_subset=0`` = the whole set)."""
    full = DATASET_SIZES[config.dataset][0]
    return min(config.train_subset, full) if config.train_subset else full


def _device_problem(config: RunConfig, s: Settings) -> str | None:
    device = config.device
    if s.device_policy is DevicePolicy.CPU_ONLY and device not in ("auto", "cpu"):
        return f"device {device!r} is not allowed here; use 'auto' or 'cpu'"
    if s.device_policy is DevicePolicy.GPU_ONLY and device in ("cpu", "mps"):
        return f"device {device!r} is not allowed here; use 'auto' or 'cuda'"
    return None


def _problems(config: RunConfig, s: Settings) -> list[tuple[str, Any, str]]:
    """(limit, value, detail) of every limit ``config`` exceeds, in a fixed order."""
    out: list[tuple[str, Any, str]] = []
    if s.max_epochs and config.epochs > s.max_epochs:
        out.append(("max_epochs", s.max_epochs, f"this run asks for {config.epochs} epochs"))
    if s.max_train_subset and config.dataset in DATASET_SIZES:
        n = train_images(config)
        if n > s.max_train_subset:
            whole = "" if config.train_subset else " (train_subset=0 means the whole training set)"
            out.append(("max_train_subset", s.max_train_subset,
                        f"this run asks for {n} training images{whole}"))
    if s.allowed_models and config.model not in s.allowed_models:
        out.append(("allowed_models", ",".join(s.allowed_models),
                    f"model {clip(config.model)} is not among the allowed models"))
    spec = MODELS.get(config.model)
    if s.max_model_params and spec is not None and spec.num_params > s.max_model_params:
        out.append(("max_model_params", s.max_model_params,
                    f"model {config.model!r} has {spec.num_params:,} parameters"))
    device = _device_problem(config, s)
    if device:
        out.append(("device_policy", s.device_policy.value, device))
    return out


def check_config_limits(config: RunConfig, settings: Settings | None = None, *,
                        outcome: str = "nothing was queued") -> None:
    """Raise ``LimitExceeded`` if ``config`` asks for more than this server allows (epochs,
    training images, model, model size, device); ``outcome`` ends its message (what the caller
    did not do). The queue limits are counted in the admission's transaction (admission.py)."""
    s = settings or load_settings()
    problems = _problems(config, s)
    if problems:
        raise LimitExceeded(*problems[0], outcome=outcome)


def check_request_size(n_configs: int, seeds: int, existing_runs: int, s: Settings) -> None:
    """Refuse at once, before a config is built or hashed, a request that no queue limit can let
    through: ``seeds`` seeds of one config are ``seeds`` different runs, of which at most
    ``existing_runs`` (the store's runs) can be reused, so at least ``seeds - existing_runs`` are
    new. Whatever the limits, a request holds at most ``MAX_RUNS_PER_REQUEST`` runs."""
    least_new = seeds - existing_runs
    for limit in ("max_queue", "max_queued_per_owner"):
        value = getattr(s, limit)
        if value and least_new > value:
            raise LimitExceeded(limit, value, f"this request asks for {seeds:,} seeds, so at "
                                f"least {least_new:,} new runs")
    if n_configs * seeds > MAX_RUNS_PER_REQUEST:
        raise ValueError(f"this request asks for {n_configs * seeds:,} runs; at most "
                         f"{MAX_RUNS_PER_REQUEST:,} per request; nothing was queued")
