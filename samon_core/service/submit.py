"""Submitting runs: ``submit``, ``submit_info``, ``submit_group``, with reuse of identical runs.

* **Reuse.** With ``reuse=True`` (the default) a request whose config (seed included) equals that
  of a finished run returns that run instead of training it again. With the ``share_active``
  setting (default on), an identical request also shares a run that is queued or running, so
  thirty students clicking the same preset at once queue it once. Every requester is recorded in
  ``meta.json["requesters"]``, and a requester's ``cancel`` only detaches that owner while
  others still wait for the run.
* **Who.** ``owner=`` is the name recorded with the runs, in normal form (``Alice`` is
  ``alice``; runs/owners.py). A registered name needs its key (``owner_key=``) or the teacher
  token; the name ``teacher`` needs the token; an unregistered name needs nothing (scripts), but
  then only the teacher can cancel its runs, and nobody can register the name later
  (identity.py, keyfile.py). A submit under an unregistered name holds the key file's lock, so
  the name cannot be registered between the check and the runs. ``group=`` joins a comparison
  only if it is new or the caller's own (a group belongs to its creator; the teacher may join
  any). The teacher's room locks (room.py) bind everyone but the teacher.
* **Bounds.** Label, group and preset are bounded lines of text (runs/freetext.py); a request
  too large for the queue limits is refused before a config is built (``check_request_size``).
* **Checks before anything is created**: the limits (limits.py) and what can be known about the
  run without training it (preflight.py: model, subset sizes, and with ``local_checks`` the device
  and the data files of this machine). Submissions of one run store are
  serialised by a lock file (``submit_lock``), so concurrent students cannot overshoot a queue
  limit or queue two copies of one config.
* **All or nothing.** If the queue cannot be reached or the store cannot be written, the runs of
  the request disappear again, and the caller gets one clear error: ``QueueUnavailable`` or
  ``StoreUnavailable`` (disk full, read-only folder, permissions).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from samon_core.runs.config import RunConfig
from samon_core.runs.freetext import check_text
from samon_core.runs.io import file_lock, store_error
from samon_core.runs.keyfile import names_lock
from samon_core.runs.messages import clip
from samon_core.runs.owners import NotAllowed, groups_of, normalize_owner_name
from samon_core.runs.states import ACTIVE_STATES, RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service.backend import QUEUE_DIR, Queue, get_queue
from samon_core.service.claims import cancel_pending
from samon_core.service.identity import Identity, authorize_owner
from samon_core.service.limits import (
    check_config_limits,
    check_queue_limits,
    check_request_size,
)
from samon_core.service.preflight import check_runnable
from samon_core.service.room import check_room, read_room
from samon_core.service.scan import RunRow, scan_runs
from samon_core.service.settings import Settings, load_settings


@contextlib.contextmanager
def submit_lock(store: RunStore, timeout: float | None = None) -> Iterator[None]:
    """Serialises submissions (and requester changes) of one run store across processes; waits
    at most ``timeout`` seconds (setting ``lock_timeout_s``; default ``runs.io.LOCK_TIMEOUT_S``)
    for a holder, then raises ``LockTimeout``."""
    folder = store.root / QUEUE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "submit.lock", timeout=timeout):
        yield


@dataclass
class _Request:
    config: RunConfig
    label: str
    group: str


def new_group_id() -> str:
    return f"g{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _reusable(rows: list[RunRow], config_hash: str, store: RunStore,
              s: Settings) -> RunRow | None:
    """The run an identical request can use: the newest finished one, else (``share_active``) a
    running one, else the longest-waiting queued one; never one with a pending cancel."""
    same = [r for r in rows if r.config_hash == config_hash]
    finished = [r for r in same if r.state == RunState.FINISHED]
    if finished:
        return max(finished, key=lambda r: (r.created, r.run_id))
    if not s.share_active:
        return None
    active = [r for r in same if r.state in ACTIVE_STATES
              and not cancel_pending(store, r.run_id, s)]
    if not active:
        return None
    return min(active, key=lambda r: (r.state != RunState.RUNNING, r.queued_at, r.run_id))


def _enqueue_new(store: RunStore, queue: Queue, run_id: str) -> None:
    task = queue.new_task(run_id)
    store.write_status(run_id, RunState.QUEUED, queued_at=time.time(), task_id=task.id)
    queue.enqueue(task)


@dataclass(frozen=True)
class _Credentials:
    """What the caller gave to prove who they are (identity.py)."""

    owner_key: str | None = None
    teacher_token: str | SecretStr | None = None


def _check_requests(requests: list[_Request], owner: str, preset: str | None,
                    who: _Credentials, store: RunStore, s: Settings) -> tuple[str, Identity]:
    """Everything that can be checked before the submit lock, cheapest first; returns the owner
    in normal form and the caller."""
    owner = normalize_owner_name(owner)  # ValueError for a name that is none
    if preset is not None:
        check_text("preset", preset)
    for req in requests:
        if not isinstance(req.config, RunConfig):
            raise TypeError(f"config must be a RunConfig, got {type(req.config).__name__}")
        check_text("label", req.label)
        if req.group:
            check_text("group", req.group)
    ident = authorize_owner(owner, who.owner_key, who.teacher_token, store=store, settings=s)
    if not ident.is_teacher:  # the teacher's locks bind the students, not the teacher
        check_room(read_room(store), [req.config for req in requests], preset)
    for req in requests:  # every request is checked before anything is created
        check_config_limits(req.config, s)
        check_runnable(req.config, here=s.checks_here)
    return owner, ident


def _check_under_lock(requests: list[_Request], rows: list[RunRow], owner: str,
                      ident: Identity, store: RunStore) -> None:
    """What may have changed since ``_check_requests``: a name registered meanwhile (the key
    file's lock is held, so it cannot be registered now), and whose the groups are."""
    if ident.is_teacher:
        return
    if ident.owner is None and store.is_registered(owner):
        raise NotAllowed(f"the name {clip(owner)} was registered just now: acting under it "
                         "needs its owner key")
    asked = {req.group for req in requests if req.group}
    for row in rows if asked else ():
        for who, group in groups_of(row.meta):
            if group in asked and who != owner:
                raise NotAllowed(f"the comparison {clip(group)} is another owner's: runs join "
                                 "only their owner's comparisons; leave group empty to start "
                                 "your own")


def _plan(requests: list[_Request], rows: list[RunRow], reuse: bool, store: RunStore,
          s: Settings) -> tuple[list[tuple[_Request, RunRow | None, int | None]], int]:
    """For each request: the run it reuses, or the earlier request of this call it duplicates,
    or neither (a new run); and the number of new runs."""
    plan: list[tuple[_Request, RunRow | None, int | None]] = []
    first_of_hash: dict[str, int] = {}
    n_new = 0
    for i, req in enumerate(requests):
        h = req.config.config_hash()
        row = _reusable(rows, h, store, s) if reuse else None
        dup = first_of_hash.get(h) if reuse and row is None else None
        if row is None and dup is None:
            n_new += 1
            first_of_hash.setdefault(h, i)
        plan.append((req, row, dup))
    return plan, n_new


def _carry_out(plan: list[tuple[_Request, RunRow | None, int | None]], store: RunStore,
               queue: Queue, owner: str, preset: str | None,
               created: list[str]) -> list[dict[str, Any]]:
    """Create, share or reuse the runs of ``plan``; ids of new runs are added to ``created``."""
    results: list[dict[str, Any]] = []
    for req, row, dup in plan:
        if row is not None:
            store.add_requester(row.run_id, owner, req.group)
            results.append({"run_id": row.run_id, "reused": True, "reused_state": row.state})
        elif dup is not None:
            rid = results[dup]["run_id"]
            results.append({"run_id": rid, "reused": True,
                            "reused_state": RunState.QUEUED.value})
        else:
            now = time.time()
            meta = {"owner": owner, "group": req.group, "label": req.label, "preset": preset,
                    "requesters": [{"owner": owner, "group": req.group, "time": now}]}
            rid = store.create_run(req.config, meta)
            created.append(rid)
            results.append({"run_id": rid, "reused": False, "reused_state": None})
    # Enqueued only once every run of the request exists: a worker that takes the first one
    # finds its whole comparison and trains it in lockstep (lockstep.py), not a part of it.
    for rid in created:
        _enqueue_new(store, queue, rid)
    return results


def _reseeded(requests: list[_Request], pick_seed: Callable[[list[RunRow]], int],
              rows: list[RunRow]) -> list[_Request]:
    """The requests with the seed ``pick_seed(rows)`` chosen under the submit lock (each
    config's seed replaced; the checks before the lock do not depend on the seed)."""
    seed = pick_seed(rows)
    return [_Request(req.config.replace(seed=seed), req.label, req.group) for req in requests]


def _submit_many(requests: list[_Request], *, owner: str, preset: str | None, reuse: bool,
                 store: RunStore | None, settings: Settings | None,
                 who: _Credentials,
                 pick_seed: Callable[[list[RunRow]], int] | None = None) -> list[dict[str, Any]]:
    store = store_or_default(store)
    s = settings or load_settings()
    owner, ident = _check_requests(requests, owner, preset, who, store, s)
    unproven = ident.owner is None and not ident.is_teacher  # an unregistered name
    created: list[str] = []
    try:
        queue = get_queue(store, s)
        names = names_lock(store.root) if unproven else contextlib.nullcontext()
        with submit_lock(store, s.lock_timeout_s), names:
            rows = scan_runs(store)
            if pick_seed is not None:  # chosen here, so two callers never get one seed
                requests = _reseeded(requests, pick_seed, rows)
            _check_under_lock(requests, rows, owner, ident, store)
            plan, n_new = _plan(requests, rows, reuse, store, s)
            check_queue_limits(rows, owner, n_new, s)
            return _carry_out(plan, store, queue, owner, preset, created)
    except BaseException as exc:
        # All or nothing: the runs of this request disappear again. A message that did get into
        # the queue is skipped by the worker (its run no longer exists).
        for rid in created:
            with contextlib.suppress(Exception):
                store.delete_run(rid, owner=owner, force=True)
        if isinstance(exc, OSError):  # disk full, read-only folder, permissions: one line
            raise store_error(exc) from exc
        raise


def submit_info(config: RunConfig, *, owner: str, group: str = "", label: str = "",
                preset: str | None = None, store: RunStore | None = None, reuse: bool = True,
                settings: Settings | None = None, owner_key: str | None = None,
                teacher_token: str | SecretStr | None = None) -> dict[str, Any]:
    """Queue one run; returns ``{"run_id", "reused", "reused_state"}`` at once.

    ``reused`` is True when an identical run (same config, seed included) was found instead:
    ``reused_state`` is then 'finished', 'running' or 'queued'. Raises ``LimitExceeded`` (nothing
    queued; also for a room lock), ``NotAllowed`` (a registered ``owner`` without its
    ``owner_key``, or ``teacher`` without the ``teacher_token``) or ``QueueUnavailable``.
    """
    req = _Request(config, label or config.method_label(), group)
    return _submit_many([req], owner=owner, preset=preset, reuse=reuse, store=store,
                        settings=settings, who=_Credentials(owner_key, teacher_token))[0]


def submit(config: RunConfig, *, owner: str, group: str = "", label: str = "",
           preset: str | None = None, store: RunStore | None = None, reuse: bool = True,
           settings: Settings | None = None, owner_key: str | None = None,
           teacher_token: str | SecretStr | None = None) -> str:
    """Queue one run and return its id at once (state 'queued'), or, with ``reuse``, the id of an
    identical finished (or queued / running, see ``share_active``) run. See ``submit_info``."""
    return submit_info(config, owner=owner, group=group, label=label, preset=preset, store=store,
                       reuse=reuse, settings=settings, owner_key=owner_key,
                       teacher_token=teacher_token)["run_id"]


def submit_group(configs: Mapping[str, RunConfig], *, owner: str, preset: str | None = None,
                 seeds: int = 1, store: RunStore | None = None, reuse: bool = True,
                 settings: Settings | None = None, owner_key: str | None = None,
                 teacher_token: str | SecretStr | None = None,
                 pick_seed: Callable[[list[RunRow]], int] | None = None) -> tuple[str, list[str]]:
    """Queue a comparison: every config (label -> config, e.g. a preset's) with ``seeds`` seeds
    (``seed``, ``seed + 1``, ...). Returns the group id and the run ids (configs in order, seeds
    inner). All or nothing: if any run is over a limit, none is queued. Who may submit under
    ``owner``: see ``submit_info``. ``pick_seed`` (one seed only): called with the store's rows
    under the submit lock, it gives the seed of every config, so that concurrent callers that
    pick "the next unused seed" get different ones (the class experiment's "add my seed")."""
    if not configs:
        raise ValueError("submit_group needs at least one config")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    if pick_seed is not None and seeds != 1:
        raise ValueError("pick_seed chooses one seed: seeds must be 1")
    store = store_or_default(store)
    settings = settings or load_settings()
    check_request_size(len(configs), seeds, len(store.run_ids()), settings)  # before any work
    group = new_group_id()
    requests = []
    for label, config in configs.items():
        if not isinstance(config, RunConfig):
            raise TypeError(f"config {label!r} must be a RunConfig, got {type(config).__name__}")
        for i in range(seeds):
            cfg = config if i == 0 else config.replace(seed=config.seed + i)
            name = label if seeds == 1 else f"{label} (seed {cfg.seed})"
            requests.append(_Request(cfg, name, group))
    results = _submit_many(requests, owner=owner, preset=preset, reuse=reuse, store=store,
                           settings=settings, who=_Credentials(owner_key, teacher_token),
                           pick_seed=pick_seed)
    return group, [r["run_id"] for r in results]
