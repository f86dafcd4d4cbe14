"""Replay for the next class: a class experiment exported to one zip file and loaded again, so a
teacher can show last week's thirty-seed verdict at once, without training.

The file (``export_experiment``) holds ``experiment.json`` (the format, the experiment, when it
was exported, the run ids) and per run of the class verdict (``classroom.pool``, finished runs
only, one per method and seed) ``runs/<id>/`` with ``config.json``, ``meta.json``,
``metrics.jsonl``, ``summary.json`` and ``status.json`` (its state and last epoch, from the
database's row: the file's format, not the store's). Never a checkpoint, and nothing that
names a student: owners and requesters are written as ``student-01``, ``student-02``, ... (the
teacher stays ``teacher``), comparison groups as ``class-01``, ..., and meta.json keeps only
label, group, preset and times.

``import_experiment`` (teacher only) checks the file before it writes anything (sizes, entry
names, every config readable by this version) and writes the runs all or nothing into a store;
``load_replay`` puts them in the room's replay store (``service.room.REPLAY_DIR``, a run store
of its own, so last week's runs never mix with this week's) and pins the replay in the room.

The replay store keeps its rows in its own SQLite file (``.replay/samon.db``) even when the main
store's database is PostgreSQL: its rows and folders then move and go together (a load is
written into a fresh staging folder and renamed into place; a removal deletes the folder), no
row ever points at a folder that is gone, and no worker or queue limit of the room ever sees
last week's runs. No torch, no streamlit.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from samon_core.claims.classroom import pooled_verdict
from samon_core.runs.config import RunConfig
from samon_core.runs.database import DB_FILE
from samon_core.runs.files import CONFIG_FILE, META_FILE, METRICS_FILE, STATUS_FILE, SUMMARY_FILE
from samon_core.runs.messages import clip
from samon_core.runs.owners import TEACHER_OWNER, NotAllowed
from samon_core.runs.states import RunState
from samon_core.runs.store import RUN_ID_RE, RunStore, store_or_default
from samon_core.service.room import REPLAY_DIR, ClassExperiment, Room, identify, read_room, set_room
from samon_core.service.settings import Settings, load_settings

FORMAT = "samon-class-experiment"
VERSION = 1
# a run's members in the file (runs/<id>/<name>): the file's format, kept as it is
RUN_FILES = (CONFIG_FILE, META_FILE, METRICS_FILE, SUMMARY_FILE, STATUS_FILE)
MAX_TOTAL_BYTES = 512 * 2**20  # uncompressed: 90 cpu runs take a few MiB
MAX_FILE_BYTES = 64 * 2**20
MAX_RUNS = 3000
_STAGING_PREFIX = f"{REPLAY_DIR}-loading-"  # a load being written (removed when it fails)
_OLD_PREFIX = f"{REPLAY_DIR}-old-"  # the previous replay, renamed away before it is removed
_LEFTOVER_S = 3600.0  # a staging or old folder unchanged this long was left by a crash
_META_KEYS = ("label", "group", "preset", "created")
_STATUS_KEYS = ("ended", "epoch", "progress")


class BadReplayFile(ValueError):
    """The file is not a class experiment this version can load (one line says why)."""


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


def _pseudonym(names: dict[str, str], owner: Any) -> str:
    """``student-NN`` for each name in order of first appearance; the teacher stays."""
    name = str(owner or "")
    if name == TEACHER_OWNER:
        return name
    return names.setdefault(name, f"student-{len(names) + 1:02d}")


def _group(groups: dict[str, str], group: Any) -> str:
    """``class-NN`` per comparison group (a group id may carry what its creator typed)."""
    name = str(group or "")
    return groups.setdefault(name, f"class-{len(groups) + 1:02d}") if name else ""


def _meta(meta: Mapping[str, Any], names: dict[str, str], groups: dict[str, str]
          ) -> dict[str, Any]:
    out = {k: meta[k] for k in _META_KEYS if k in meta}
    out["group"] = _group(groups, meta.get("group"))
    out["owner"] = _pseudonym(names, meta.get("owner"))
    out["requesters"] = [{"owner": _pseudonym(names, r.get("owner")),
                          "group": _group(groups, r.get("group")), "time": r.get("time")}
                         for r in meta.get("requesters") or () if isinstance(r, Mapping)]
    return out


def export_experiment(store: RunStore, experiment: ClassExperiment, *,
                      clock: Callable[[], float] = time.time) -> bytes:
    """The zip file of ``experiment``'s finished runs (module doc)."""
    finished = ClassExperiment(**{**experiment.model_dump(), "provisional": False})
    _, got = pooled_verdict(store, finished)
    now = float(clock())
    names: dict[str, str] = {}
    groups: dict[str, str] = {}
    ids = [run.run_id for run in got.runs.values()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("experiment.json", json.dumps({
            "format": FORMAT, "version": VERSION, "exported_at": now, "runs": ids,
            "experiment": {**finished.model_dump(mode="json"), "exported_at": now}}, indent=1))
        for rid in ids:
            status = store.read_status(rid)
            files = {
                CONFIG_FILE: store.read_config(rid).to_json(),
                META_FILE: json.dumps(_meta(store.read_meta(rid), names, groups)),
                METRICS_FILE: "".join(json.dumps(r) + "\n"
                                      for r in store.read_records(rid, resolve=False)),
                SUMMARY_FILE: json.dumps(store.read_summary(rid) or {}),
                STATUS_FILE: json.dumps({"state": status.get("state"),
                                         **{k: status[k] for k in _STATUS_KEYS if k in status}}),
            }
            for name, text in files.items():
                z.writestr(f"runs/{rid}/{name}", text)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------


def _open(data: bytes) -> zipfile.ZipFile:
    if not isinstance(data, (bytes, bytearray)):
        raise BadReplayFile(f"expected the file's bytes, got {type(data).__name__}")
    try:
        z = zipfile.ZipFile(io.BytesIO(bytes(data)))
    except zipfile.BadZipFile:
        raise BadReplayFile("not a class experiment file (not a zip file)") from None
    infos = z.infolist()
    if len(infos) > 1 + len(RUN_FILES) * MAX_RUNS:
        raise BadReplayFile(f"too many files in it ({len(infos)})")
    if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES or any(
            i.file_size > MAX_FILE_BYTES for i in infos):
        raise BadReplayFile(f"too large once unpacked (at most {MAX_TOTAL_BYTES // 2**20} MiB)")
    return z


def _json(z: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(z.read(name).decode("utf-8"))
    except KeyError:
        raise BadReplayFile(f"{name} is missing") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadReplayFile(f"{name} is not valid JSON") from None


def _header(z: zipfile.ZipFile) -> tuple[ClassExperiment, list[str]]:
    head = _json(z, "experiment.json")
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise BadReplayFile("not a class experiment file (experiment.json has another format)")
    if head.get("version") != VERSION:
        raise BadReplayFile(f"a class experiment file of version {clip(head.get('version'))}; "
                            f"this lab reads version {VERSION}")
    try:
        experiment = ClassExperiment.model_validate(head.get("experiment"))
    except ValidationError as exc:
        raise BadReplayFile(f"its experiment is not valid: {clip(str(exc).splitlines()[0])}"
                            ) from None
    ids = head.get("runs")
    if not isinstance(ids, list) or len(ids) > MAX_RUNS or not all(
            isinstance(i, str) and RUN_ID_RE.fullmatch(i) and ".." not in i for i in ids):
        raise BadReplayFile("its list of runs is not valid")
    return experiment, list(dict.fromkeys(ids))


def _run(z: zipfile.ZipFile, rid: str) -> dict[str, Any]:
    """One run's files, checked: config readable by this version, JSON objects, records."""
    try:
        config = RunConfig.from_dict(_json(z, f"runs/{rid}/{CONFIG_FILE}"))
    except ValueError as exc:
        raise BadReplayFile(f"run {rid}: {clip(str(exc), 200)}") from None
    parts = {name: _json(z, f"runs/{rid}/{name}")
             for name in (META_FILE, SUMMARY_FILE, STATUS_FILE)}
    if not all(isinstance(v, dict) for v in parts.values()):
        raise BadReplayFile(f"run {rid}: meta, summary and status must be JSON objects")
    if parts[STATUS_FILE].get("state") != RunState.FINISHED:
        raise BadReplayFile(f"run {rid}: only finished runs are exported, this one is "
                            f"{clip(parts[STATUS_FILE].get('state'))}")
    try:
        text = z.read(f"runs/{rid}/{METRICS_FILE}").decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        raise BadReplayFile(f"run {rid}: {METRICS_FILE} is missing or not text") from None
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError, RecursionError):  # a torn line: skipped, as readers do
            rec = json.loads(line)
            if isinstance(rec, dict) and "kind" in rec:
                records.append(rec)
    return {"config": config, "records": records, **parts}


def _write(store: RunStore, rid: str, run: Mapping[str, Any]) -> None:
    meta = {k: run[META_FILE][k] for k in (*_META_KEYS, "owner", "requesters")
            if k in run[META_FILE]}
    store.create_run(run["config"], meta, run_id=rid)
    with store.metrics_writer(rid, fsync_every_s=None) as w:
        for rec in run["records"]:
            w.write(rec)
    if run[SUMMARY_FILE]:
        store.write_summary(rid, run[SUMMARY_FILE])
    status = run[STATUS_FILE]
    store.write_status(rid, RunState.FINISHED,
                       **{k: status[k] for k in _STATUS_KEYS if k in status})


def import_experiment(data: bytes, *, store: RunStore, teacher_token: str | SecretStr | None,
                      settings: Settings | None = None) -> ClassExperiment:
    """Write the runs of an exported class experiment into ``store`` (teacher only) and return
    the experiment (its ``exported_at`` set). Everything is checked before the first run is
    written; a run id already in the store is kept as it is; on any failure the runs written
    are removed again. ``BadReplayFile`` (a ``ValueError``) says what is wrong with the file.
    Each run is created queued and marked finished at once: ``store`` must be one no worker
    serves (``load_replay``'s staging store), or a worker could claim a run in between."""
    s = settings or load_settings()
    if not identify(teacher_token=teacher_token, store=store, settings=s).is_teacher:
        raise NotAllowed("only the teacher (with the teacher token) can load a class experiment")
    with _open(data) as z:
        experiment, ids = _header(z)
        runs = {rid: _run(z, rid) for rid in ids if not store.exists(rid)}
    written: list[str] = []
    try:
        for rid, run in runs.items():
            _write(store, rid, run)
            written.append(rid)
    except BaseException:
        for rid in written:
            with contextlib.suppress(Exception):
                store.delete_run(rid, force=True, is_teacher=True)
        raise
    return experiment


# ---------------------------------------------------------------------------------------------
# the room's replay
# ---------------------------------------------------------------------------------------------


def _own_store(root: Path) -> RunStore:
    """A run store with its own SQLite database in its folder (module doc)."""
    return RunStore(root, database_url=f"sqlite:///{Path(root).resolve() / DB_FILE}")


def replay_store(store: RunStore | None = None) -> RunStore:
    """The run store of the room's replay (under the main store's root, never listed there;
    its own SQLite database, module doc)."""
    return _own_store(store_or_default(store).root / REPLAY_DIR)


def _sweep(root: Path, now: float) -> None:
    """Remove staging and old replay folders a crashed load left (unchanged for an hour)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.name.startswith((_STAGING_PREFIX, _OLD_PREFIX)):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > _LEFTOVER_S:
                        shutil.rmtree(entry.path, ignore_errors=True)


def _swap_in(staging: Path, target: Path) -> None:
    """Put ``staging`` (a whole store: folders and database) in ``target``'s place; the old one
    is renamed away first, so readers see the old replay or the new one, then removed."""
    old = target.parent / f"{_OLD_PREFIX}{secrets.token_hex(4)}"
    with contextlib.suppress(FileNotFoundError):
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def load_replay(data: bytes, *, teacher_token: str | SecretStr | None,
                store: RunStore | None = None, settings: Settings | None = None
                ) -> ClassExperiment:
    """Load an exported class experiment as the room's replay (teacher only): the file is
    checked in full first, then the new runs are written into a fresh staging store (a new
    folder each time, so no cached database of an earlier load is reused), which replaces the
    previous replay's folder, and the room says which experiment they are."""
    store, s = store_or_default(store), settings or load_settings()
    _sweep(store.root, time.time())
    staging = _own_store(store.root / f"{_STAGING_PREFIX}{secrets.token_hex(4)}")
    try:
        experiment = import_experiment(data, store=staging, teacher_token=teacher_token,
                                       settings=s)
        staging.root.mkdir(parents=True, exist_ok=True)
        _swap_in(staging.root, replay_store(store).root)
    finally:
        shutil.rmtree(staging.root, ignore_errors=True)
    room = read_room(store)
    set_room(Room(**{**room.model_dump(), "replay": experiment.model_dump()}),
             teacher_token=teacher_token, store=store, settings=s)
    return experiment


def clear_replay(*, teacher_token: str | SecretStr | None, store: RunStore | None = None,
                 settings: Settings | None = None) -> None:
    """Take the replay out of the room (teacher only) and remove its runs (folders and
    database go together)."""
    store, s = store_or_default(store), settings or load_settings()
    room = read_room(store)
    set_room(Room(**{**room.model_dump(), "replay": None}), teacher_token=teacher_token,
             store=store, settings=s)
    target = replay_store(store).root
    old = target.parent / f"{_OLD_PREFIX}{secrets.token_hex(4)}"
    with contextlib.suppress(FileNotFoundError):
        target.rename(old)
        shutil.rmtree(old, ignore_errors=True)
