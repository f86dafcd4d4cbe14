"""The job service: the app admits runs into the database, worker processes train them.

Callers write ``from samon_core import service`` and ``service.submit(...)``. No torch and no
streamlit are imported here: the Streamlit pages import this package on every rerun. The app
never trains; it only calls ``submit`` / ``cancel`` / ``resume`` and reads the run store, whose
database (``samon_core.runs.database``: SQLite in the run store, or PostgreSQL) is the one
source of truth for runs, the queue, cancel requests, owners, the room and the workers.

The modules, each importing only those above it:

* ``settings``  the server settings (database, limits, workers) from samon.toml / SAMON_*;
* ``admission`` what gets in: the limits of a shared server, and the runs admitted under the
  limits and room locks in one transaction;
* ``pool``      devices, how many workers each holds, worker pools (``ensure_workers``);
* ``preflight`` what can be checked before a run exists (model, subsets, device, data files);
* ``room``      who someone is (owner keys, the teacher token: ``identify``) and what the teacher
  set for everyone (message, locks, the class experiment);
* ``scheduler`` who trains what: the fair-share claim, heartbeats, ends, cancel, queue positions;
* ``submit``    submit / reuse, from the app or the command line (its credentials);
* ``control``   cancel, delete, resume, slices of a finished run;
* ``recovery``  runs of dead workers back to the queue; leftovers of killed writers;
* ``worker``    the worker process and its command line (``python -m samon_core worker``).

Run states are ``samon_core.runs.states.RunState``.
"""

from samon_core.runs.database import DatabaseUnavailable
from samon_core.runs.io import StoreUnavailable
from samon_core.runs.keys import BadKey
from samon_core.runs.owners import DETACHED, TEACHER_OWNER, NameTaken, NotAllowed
from samon_core.runs.states import ACTIVE_STATES, RESUMABLE_STATES, TERMINAL_STATES, RunState
from samon_core.service.admission import LimitExceeded
from samon_core.service.control import (
    CANCELLING,
    cancel,
    delete_run,
    pending_slices,
    request_slices,
    resume,
)
from samon_core.service.pool import ensure_workers, stop_workers, workers_status
from samon_core.service.preflight import NotRunnable
from samon_core.service.recovery import pid_alive, recover
from samon_core.service.room import (
    Identity,
    Room,
    RoomLocked,
    identify,
    is_teacher,
    read_room,
    register_owner,
    set_room,
)
from samon_core.service.scheduler import owner_usage, queue_position, queue_positions
from samon_core.service.settings import Settings, load_settings
from samon_core.service.submit import submit, submit_group, submit_info

# The pages catch ``service.QueueUnavailable``: the queue is the database now.
QueueUnavailable = DatabaseUnavailable

__all__ = [
    "ACTIVE_STATES",
    "CANCELLING",
    "DETACHED",
    "RESUMABLE_STATES",
    "TEACHER_OWNER",
    "TERMINAL_STATES",
    "BadKey",
    "DatabaseUnavailable",
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
    "delete_run",
    "ensure_workers",
    "identify",
    "is_teacher",
    "load_settings",
    "pid_alive",
    "owner_usage",
    "queue_position",
    "queue_positions",
    "read_room",
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
