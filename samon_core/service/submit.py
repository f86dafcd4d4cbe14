"""Submitting runs: ``submit``, ``submit_info``, ``submit_group``, with reuse of identical runs;
and the command line's ``train_now`` (``samon run``, ``claim run``): the same checks
(``check_cli_request``), the same admission, then trained in this process instead of queued.

* **One transaction** (admission.py): the run folders (config.json, meta.json) are made first,
  then their rows are admitted in one transaction that re-checks the caller's proof of their
  name, the room's locks (the room as stored now), whose the comparisons are and the queue
  limits against the rows it sees, and reuses identical runs. A refusal or any error removes
  the folders again: all or nothing. Admissions (and registrations) are serialised by the
  database, so thirty students clicking at once can never overfill a limit or queue one config
  twice; no lock file, no store scan.
* **Reuse.** With ``reuse=True`` (the default) a request whose config (seed included) equals that
  of a finished run returns that run instead of training it again. With the ``share_active``
  setting (default on), an identical request also shares a run that is queued or running (not
  one whose cancel is pending), so thirty students clicking the same preset at once queue it
  once. Every requester is recorded (the database's ``requesters``), and a requester's
  ``cancel`` only detaches that owner while others still wait for the run.
* **Who.** ``owner=`` is the name recorded with the runs, in normal form (``Alice`` is
  ``alice``; runs/owners.py). A registered name needs its key (``owner_key=``) or the teacher
  token; the name ``teacher`` needs the token; an unregistered name needs nothing (scripts), but
  then only the teacher can cancel its runs, and nobody can register the name later
  (identity.py, runs/ownerkeys.py). The admission reads the name's key digest again in its own
  transaction, ordered with registrations, so a name registered (or given back) between the
  check and the runs gets none. ``group=`` joins a comparison only if it is new or the caller's
  own (a group belongs to its creator; the teacher may join any). The teacher's room locks
  (room.py) bind everyone but the teacher.
* **Bounds.** Label, group and preset are bounded lines of text (runs/freetext.py); a request
  too large for the queue limits is refused before a config is built (``check_request_size``).
* **Checks before anything is created**: the limits (limits.py), the room's locks, and what can
  be known about the run without training it (preflight.py: model, subset sizes, and with
  ``local_checks`` the device and the data files of this machine).
* **Faults.** A store that cannot be written (disk full, read-only folder, permissions) is one
  ``StoreUnavailable`` line.
"""


from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import Connection

from samon_core.runs.config import RunConfig
from samon_core.runs.freetext import check_text
from samon_core.runs.io import read_text_safely
from samon_core.runs.keys import matches
from samon_core.runs.messages import clip
from samon_core.runs.owners import TEACHER_OWNER, NotAllowed, is_teacher_name, normalize_owner_name
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore, store_or_default
from samon_core.service import admission
from samon_core.service.admission import (
    NewRun,
    QueueLimits,
    check_config_limits,
    check_request_size,
)
from samon_core.service.preflight import check_runnable
from samon_core.service.room import Identity, authorize_owner, check_room, read_room, room_from_body
from samon_core.service.settings import Settings, env_name, load_settings

# pick_seed(rows) -> the seed: rows are every run's (run_id, config_hash, state) as the
# admission's transaction sees them (admission.taken_configs)
PickSeed = Callable[[list[Any]], int]


@dataclass
class _Request:
    config: RunConfig
    label: str
    group: str


def new_group_id() -> str:
    return f"g{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class _Credentials:
    """What the caller gave to prove who they are (identity.py)."""

    owner_key: str | None = None
    teacher_token: str | SecretStr | None = None


def _check_requests(requests: list[_Request], owner: str, preset: str | None,
                    who: _Credentials, store: RunStore, s: Settings, *,
                    here: bool | None = None, data_dir: str | None = None,
                    outcome: str = "nothing was queued",
                    labelled: bool = False) -> tuple[str, Identity]:
    """Everything that can be checked before a folder is made, cheapest first (the one list of
    checks: the app's submit and the command line's ``check_cli_request``); returns the owner
    in normal form and the caller. ``here``: preflight checks this machine's device and data
    (``data_dir``) too (None: the ``checks_here`` setting, for a queue whose workers may run
    elsewhere); ``outcome`` ends a refusal; ``labelled`` names the run a limit or preflight
    refuses (a command's several runs)."""
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
        check_room(read_room(store), [req.config for req in requests], preset, outcome=outcome)
    for req in requests:  # every request is checked before anything is created
        try:
            check_config_limits(req.config, s, outcome=outcome)
            check_runnable(req.config, here=s.checks_here if here is None else here,
                           data_dir=data_dir)
        except ValueError as exc:
            if not labelled:
                raise
            raise ValueError(f"{req.label}: {exc}") from None
    return owner, ident


def _owner_proof(owner: str, ident: Identity,
                 who: _Credentials) -> Callable[[str | None], None] | None:
    """The admission's re-check of the caller's name against its key digest as stored now."""
    if ident.is_teacher:
        return None
    if ident.owner is None:  # a name nobody had registered

        def unregistered(stored: str | None) -> None:
            if stored is not None:
                raise NotAllowed(f"the name {clip(owner)} was registered just now: acting under "
                                 "it needs its owner key")

        return unregistered
    key = (who.owner_key or "").strip()

    def same_key(stored: str | None) -> None:
        if stored is None or not matches(key, stored):
            raise NotAllowed(f"the owner key of {clip(owner)} is no longer registered on this "
                             "server; nothing was queued")

    return same_key


def _room_lock(ident: Identity, configs: list[RunConfig],
               preset: str | None) -> Callable[[dict[str, Any] | None], None] | None:
    """The admission's check of the room's locks, on the room as stored now."""
    if ident.is_teacher:
        return None
    return lambda body: check_room(room_from_body(body), configs, preset)


class _Folders:
    """The run folders this submit made; those not admitted are removed again."""

    def __init__(self, store: RunStore, owner: str, preset: str | None):
        self.store, self.owner, self.preset = store, owner, preset
        self.made: list[str] = []

    def make(self, req: _Request, config: RunConfig) -> NewRun:
        meta = {"owner": self.owner, "group": req.group, "label": req.label,
                "preset": self.preset}
        rid = self.store.create_run(config, meta, admit=False)
        self.made.append(rid)
        return NewRun(rid, config.config_hash(), config.device, req.group or None)

    def remove(self, keep: Sequence[str] = ()) -> None:
        for rid in [r for r in self.made if r not in keep]:
            with contextlib.suppress(OSError, ValueError):
                _discard(self.store, rid)
            self.made.remove(rid)


def _discard(store: RunStore, run_id: str) -> None:
    """Remove the folder of a run that was not admitted (it has no row): renamed away first, as
    the store deletes runs, so no reader sees it half gone."""
    trash = store.root / f".deleting-{run_id}-{secrets.token_hex(4)}"
    os.rename(store.run_dir(run_id), trash)
    shutil.rmtree(trash, ignore_errors=True)


def _plan(requests: list[_Request], folders: _Folders, expected: set[str],
          reuse: bool) -> list[NewRun]:
    """A folder for each request that no run will be reused for (as far as a read a moment ago
    saw: ``expected`` hashes), and for the first of identical requests of this call."""
    out: list[NewRun] = []
    seen: set[str] = set()
    for req in requests:
        h = req.config.config_hash()
        if reuse and (h in expected or h in seen):
            out.append(NewRun(None, h, req.config.device, req.group or None))
        else:
            out.append(folders.make(req, req.config))
        seen.add(h)
    return out


def _results(adm: admission.Admission, new: Sequence[NewRun]) -> list[dict[str, Any]]:
    out = []
    for rid, run in zip(adm.run_ids, new, strict=True):
        reused = rid != run.run_id
        out.append({"run_id": rid, "reused": reused,
                    "reused_state": adm.states.get(rid, RunState.QUEUED.value) if reused else None})
    return out


def _submit_many(requests: list[_Request], *, owner: str, preset: str | None, reuse: bool,
                 store: RunStore | None, settings: Settings | None, who: _Credentials,
                 pick_seed: PickSeed | None = None) -> list[dict[str, Any]]:
    store = store_or_default(store)
    s = settings or load_settings()
    with admission.store_errors("queue the runs", store):
        owner, ident = _check_requests(requests, owner, preset, who, store, s)
        folders = _Folders(store, owner, preset)
        admit = {"limits": QueueLimits(s.max_queue, s.max_queued_per_owner),
                 "check_owner": _owner_proof(owner, ident, who),
                 "check_room": _room_lock(ident, [r.config for r in requests], preset),
                 "reuse": reuse, "share_active": s.share_active, "join_any": ident.is_teacher}
        try:
            if pick_seed is not None:
                return _seeded(requests, pick_seed, store, owner, folders, admit)
            return _planned(requests, store, owner, folders, admit)
        except BaseException:
            folders.remove()  # all or nothing
            raise


def _planned(requests: list[_Request], store: RunStore, owner: str, folders: _Folders,
             admit: dict[str, Any]) -> list[dict[str, Any]]:
    """Folders for the requests that look new, then their admission; if a run they were to
    reuse went away meanwhile, once more with a folder for every request."""
    for attempt in range(2):
        expected = admission.reusable_hashes(
            store.engine, [r.config.config_hash() for r in requests],
            share_active=admit["share_active"]) if admit["reuse"] and attempt == 0 else set()
        new = _plan(requests, folders, expected, admit["reuse"])
        try:
            adm = admission.admit(store.engine, owner, new, now=store.clock(), **admit)
        except admission.NoRunToReuse:  # cancelled or deleted since
            folders.remove()
            continue
        folders.remove(keep=adm.inserted)
        return _results(adm, new)
    raise AssertionError("unreachable: the second plan has a folder for every request")


def _seeded(requests: list[_Request], pick_seed: PickSeed, store: RunStore, owner: str,
            folders: _Folders, admit: dict[str, Any]) -> list[dict[str, Any]]:
    """The requests with the seed ``pick_seed`` chooses inside the admission's transaction (so
    two callers never get one seed), their folders made there too (the checks before do not
    depend on the seed)."""
    new: list[NewRun] = []

    def choose(conn: Connection) -> list[NewRun]:
        seed = pick_seed(admission.taken_configs(conn))
        new[:] = [folders.make(req, req.config.replace(seed=seed)) for req in requests]
        return new

    adm = admission.admit(store.engine, owner, choose, now=store.clock(), **admit)
    folders.remove(keep=adm.inserted)
    return _results(adm, new)


def admit_here(configs: Mapping[str, RunConfig], *, owner: str, ident: Identity,
               owner_key: str | None = None, preset: str | None = None,
               claim_group: str | None = None, store: RunStore | None = None) -> dict[str, str]:
    """Runs this process trains itself (``train_now``): label -> new run id, their folders made
    and their rows admitted in one transaction that re-checks the caller's proof of ``owner``
    (``ident``: ``authorize_owner``'s answer) and the room's locks as stored now, so a name
    registered from a browser since the command's check gets none of its runs.
    ``claim_group``: the runs are a claim's (``claim run``), in that claim's shared comparison
    (``admission.CLAIM_GROUP_PREFIX``: any owner who trains the claim joins it; nobody else).
    No reuse and no queue limits (the process trains them at once; the caller planned what to
    reuse and checked the server's limits and preflight). All or nothing."""
    store = store_or_default(store)
    owner = normalize_owner_name(owner)
    folders = _Folders(store, owner, preset)
    with admission.store_errors("create the runs", store):
        try:
            new = [folders.make(_Request(config, label, claim_group or ""), config)
                   for label, config in configs.items()]
            adm = admission.admit(
                store.engine, owner, new, QueueLimits(), reuse=False,
                check_owner=_owner_proof(owner, ident, _Credentials(owner_key)),
                check_room=_room_lock(ident, list(configs.values()), preset),
                join_any=ident.is_teacher, claim=claim_group is not None, now=store.clock())
        except BaseException:
            folders.remove()
            raise
    return dict(zip(configs, adm.inserted, strict=True))


# watch(label, run_id, here) -> the run's progress callback (or None); ``here`` is False for a
# run a worker took first (it trains it; this process does not)
Watch = Callable[[str, str, bool], Callable[[dict[str, Any]], None] | None]


@dataclass(frozen=True)
class Trained:
    """One run of ``train_now``: its label, its id and its summary (None: a worker took the run
    first and trains it)."""

    label: str
    run_id: str
    summary: dict[str, Any] | None


def train_now(configs: Mapping[str, RunConfig], *, owner: str, ident: Identity,
              owner_key: str | None = None, preset: str | None = None,
              claim_group: str | None = None, data_dir: str | None = None,
              watch: Watch | None = None, store: RunStore | None = None) -> list[Trained]:
    """The one "train now" path (``samon run``, ``claim run``): ``configs`` admitted as the
    queue's runs are (``admit_here``), then trained in this process as one lockstep group
    (``train_group``: step by step, so their curves and step times are measured side by side),
    with a heartbeat and the cancel column watched as a worker's runs are (``train_here``).
    ``watch`` is told of each run before training starts and gives its progress callback. The
    caller checked the request first (``check_cli_request``). Torch is imported here, inside
    the call, never when the service is loaded."""
    from samon_core.service.worker import train_here
    from samon_core.train.lockstep import GroupJob, train_group  # torch: only to train

    store = store_or_default(store)
    created = admit_here(configs, owner=owner, ident=ident, owner_key=owner_key, preset=preset,
                         claim_group=claim_group, store=store)
    with train_here(store, list(created.values())) as should_stop:
        jobs, labels = [], []
        for label, run_id in created.items():
            here = run_id in should_stop
            callback = watch(label, run_id, here) if watch is not None else None
            if here:
                jobs.append(GroupJob(configs[label], store.run_dir(run_id), callback=callback,
                                     data_dir=data_dir, should_stop=should_stop[run_id]))
                labels.append(label)
        summaries = dict(zip(labels, train_group(jobs) if jobs else [], strict=True))
    return [Trained(label, run_id, summaries.get(label)) for label, run_id in created.items()]


def submit_info(config: RunConfig, *, owner: str, group: str = "", label: str = "",
                preset: str | None = None, store: RunStore | None = None, reuse: bool = True,
                settings: Settings | None = None, owner_key: str | None = None,
                teacher_token: str | SecretStr | None = None) -> dict[str, Any]:
    """Queue one run; returns ``{"run_id", "reused", "reused_state"}`` at once.

    ``reused`` is True when an identical run (same config, seed included) was found instead:
    ``reused_state`` is then 'finished', 'running' or 'queued'. Raises ``LimitExceeded`` (nothing
    queued; also for a room lock), ``NotAllowed`` (a registered ``owner`` without its
    ``owner_key``, or ``teacher`` without the ``teacher_token``) or ``StoreUnavailable``.
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
                 pick_seed: PickSeed | None = None) -> tuple[str, list[str]]:
    """Queue a comparison: every config (label -> config, e.g. a preset's) with ``seeds`` seeds
    (``seed``, ``seed + 1``, ...). Returns the group id and the run ids (configs in order, seeds
    inner). All or nothing: if any run is over a limit, none is queued. Who may submit under
    ``owner``: see ``submit_info``. ``pick_seed`` (one seed only): called inside the admission's
    transaction with every run's (run_id, config_hash, state), it gives the seed of every
    config, so that concurrent callers that pick "the next unused seed" get different ones (the
    class experiment's "add my seed")."""
    if not configs:
        raise ValueError("submit_group needs at least one config")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    if pick_seed is not None and seeds != 1:
        raise ValueError("pick_seed chooses one seed: seeds must be 1")
    store = store_or_default(store)
    settings = settings or load_settings()
    if seeds > 1 and (settings.max_queue or settings.max_queued_per_owner):
        with admission.store_errors("queue the runs", store):
            existing = admission.run_count(store.engine)
    else:
        existing = 0  # no queue limit can refuse it on its size alone
    check_request_size(len(configs), seeds, existing, settings)  # before any work
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


# --- the command line's credentials (--owner-key, --teacher-token-file) --------------------------
# Credentials given on a command line: ``--owner-key KEY``, ``--teacher-token-file PATH`` and
# ``--owner teacher``, for ``samon run``, ``samon claim run``, ``samon cancel`` and ``samon
# landscape`` (the options themselves: ``samon_core.owner_cli.add_credential_options``).
#
# The teacher token is never an option value: a command line shows in ``ps`` to every user of the
# machine and stays in the shell history. It comes from a file (``--teacher-token-file``) or, for
# ``--owner teacher``, from the settings where it is configured (whoever can read those is the
# server's administrator anyway). An owner key may be given as an option: it only speaks for one
# student's runs. What the credentials allow is identity.py's rule, the same as for the app.


TOKEN_FILE_MAX_BYTES = 4096  # a token is a line; a large file is the wrong file

def read_token_file(path: Path) -> str:
    """The token in the file ``path`` (surrounding blanks and the newline removed). The message
    of a bad file never quotes what it holds."""
    token = read_text_safely(path, TOKEN_FILE_MAX_BYTES, "teacher token file").strip()
    if not token:
        raise ValueError(f"teacher token file {clip(str(path))} is empty")
    return token


def teacher_token(args: argparse.Namespace, settings: Settings) -> str | SecretStr | None:
    """The teacher token the command acts with: the file's, else the configured one when
    ``--owner teacher``, else None."""
    if args.teacher_token_file is not None:
        return read_token_file(args.teacher_token_file)
    owner = getattr(args, "owner", None)
    if isinstance(owner, str) and is_teacher_name(owner):
        if settings.teacher_token is None:
            raise ValueError(f"--owner {TEACHER_OWNER} needs the teacher token: configure "
                             f"teacher_token (samon.toml or ${env_name('teacher_token')}) or "
                             "give --teacher-token-file")
        return settings.teacher_token
    return None


def acting_credentials(args: argparse.Namespace, settings: Settings,
                       action: str) -> tuple[str | None, str | SecretStr | None]:
    """(owner key, teacher token) of a command that acts on an existing run (``cancel``,
    ``landscape``); ``ValueError`` naming the options when neither was given."""
    token = teacher_token(args, settings)
    if args.owner_key is None and token is None:
        raise ValueError(f"{action} needs --owner-key KEY (a requester of the run), "
                         f"--teacher-token-file PATH or --owner {TEACHER_OWNER}")
    return args.owner_key, token


def check_cli_request(args: argparse.Namespace, configs: Iterable[tuple[str, RunConfig]],
                      preset: str | None, store: RunStore, settings: Settings) -> Identity:
    """Whether the command may train ``configs`` ((label, config) pairs) here under ``--owner``
    (in normal form; its key, or the teacher token): the same checks as the app's submit
    (``_check_requests``: the room's locks, the teacher exempt; the server's limits; preflight,
    here with this machine's device and ``--data-dir``), before any run folder exists;
    ``ValueError`` with one line (naming the run for a limit or preflight) if not. ``--owner``
    defaults to ``cli``, a reserved name: nobody can register it, so only the teacher manages
    those runs."""
    requests = [_Request(config, label, "") for label, config in configs]
    who = _Credentials(args.owner_key, teacher_token(args, settings))
    _, ident = _check_requests(requests, args.owner, preset, who, store, settings, here=True,
                               data_dir=getattr(args, "data_dir", None),
                               outcome="nothing was started", labelled=True)
    return ident
