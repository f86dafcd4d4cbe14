"""The job service: the app enqueues runs, worker processes train them.

Callers write ``from samon_core import service`` and ``service.submit(...)``. No torch and no
streamlit are imported here: the Streamlit pages import this package on every rerun. The app
never trains; it only calls ``submit`` / ``cancel`` / ``resume`` and reads the run store.
Everything a page shows comes from the run folders (``samon_core.runs.store``), never from the
queue, so the UI works the same with either backend.

The modules, each importing only those above it:

* ``settings``  the server settings (queue backend, limits, workers) from samon.toml / SAMON_*;
* ``backend``   the huey queue (SQLite or Redis, JSON messages): ``get_queue``;
* ``hosts``, ``scan``, ``worker_records``, ``devices``: this host's processes, one pass over the
  run store, the workers' heartbeat files, the devices of the workers;
* ``claims``    the claim lock a worker holds while it trains a run, and cancel requests;
* ``limits``    the limits of a shared server (``LimitExceeded``), checked at submit and again
  where work starts (``samon run``, a worker before training);
* ``preflight`` what can be checked before a run folder exists (model, subset sizes, device and
  data files of the machine that trains it);
* ``identity``  owner keys and the teacher token resolved to an ``Identity``; ``register_owner``,
  ``is_teacher``;
* ``room``      the teacher's pinned message and locks (``read_room`` / ``set_room``);
* ``credentials`` the CLI's ``--owner-key`` / ``--teacher-token-file`` checked before training;
* ``submit``    ``submit`` / ``submit_info`` / ``submit_group``, with reuse of identical runs;
* ``control``   ``cancel``, ``delete_run``, ``resume`` and ``requeue`` (only a run's requesters,
  proven by their owner key, or the teacher may act on it: ``samon_core.runs.owners``);
* ``recovery``  runs whose worker died, queued runs whose message was lost;
* ``positions`` queue positions;
* ``slices``    landscape slices of finished runs, computed by a worker on request;
* ``pool``      worker pools, the app's local pool (``ensure_workers``);
* ``outage``    how a worker waits out a queue outage;
* ``worker``    the worker process (``python -m samon_core.service.worker_cli``).

The run store is the source of truth, the queue only says "look at run X"; run states are
``samon_core.runs.states.RunState``.
"""

from samon_core.runs.io import StoreUnavailable
from samon_core.runs.keys import BadKey
from samon_core.runs.owners import DETACHED, TEACHER_OWNER, NameTaken, NotAllowed
from samon_core.runs.states import ACTIVE_STATES, RESUMABLE_STATES, TERMINAL_STATES, RunState
from samon_core.service.backend import QueueUnavailable
from samon_core.service.claims import claim_lock
from samon_core.service.control import CANCELLING, cancel, delete_run, resume
from samon_core.service.hosts import pid_alive
from samon_core.service.identity import Identity, identify, is_teacher, register_owner
from samon_core.service.limits import LimitExceeded
from samon_core.service.pool import ensure_workers, stop_workers
from samon_core.service.positions import queue_position, queue_positions
from samon_core.service.preflight import NotRunnable
from samon_core.service.recovery import recover
from samon_core.service.room import Room, RoomLocked, read_room, set_room
from samon_core.service.settings import Settings, load_settings
from samon_core.service.slices import pending_slices, request_slices
from samon_core.service.submit import submit, submit_group, submit_info
from samon_core.service.worker_records import read_worker_records, workers_status

__all__ = [
    "ACTIVE_STATES",
    "CANCELLING",
    "DETACHED",
    "RESUMABLE_STATES",
    "TEACHER_OWNER",
    "TERMINAL_STATES",
    "BadKey",
    "Identity",
    "LimitExceeded",
    "NameTaken",
    "NotAllowed",
    "NotRunnable",
    "QueueUnavailable",
    "Room",
    "RoomLocked",
    "RunState",
    "Settings",
    "StoreUnavailable",
    "cancel",
    "claim_lock",
    "delete_run",
    "ensure_workers",
    "identify",
    "is_teacher",
    "load_settings",
    "pid_alive",
    "queue_position",
    "queue_positions",
    "read_room",
    "read_worker_records",
    "recover",
    "register_owner",
    "resume",
    "set_room",
    "stop_workers",
    "submit",
    "submit_group",
    "submit_info",
    "workers_status",
    "pending_slices",
    "request_slices",
]
