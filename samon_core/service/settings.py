"""Server settings: the queue backend, the worker pool and the limits of a shared server.

No torch, no streamlit: the app, the CLI and the workers all read these.

Where a value comes from, later sources winning:

1. the defaults below (good for one person on a laptop: SQLite queue, no tight limits);
2. a TOML file: ``$SAMON_SETTINGS`` if set (it must exist), else ``./samon.toml`` if present.
   Keys are the field names, at the top level or inside a ``[samon]`` table, e.g.::

       queue = "redis"
       redis_url = "redis://10.0.0.5:6379/0"
       max_epochs = 30
       allowed_models = ["tiny_resnet", "resnet20"]
       device_policy = "gpu-only"

3. environment variables ``SAMON_<FIELD NAME IN CAPITALS>``, e.g. ``SAMON_MAX_EPOCHS=30``,
   ``SAMON_ALLOWED_MODELS=tiny_resnet,resnet20``, ``SAMON_START_WORKERS=0`` (booleans: 1/0,
   true/false, yes/no, on/off; an empty variable counts as unset).

A misspelt key or a bad value raises ``ValueError`` naming the key and the source, so a typo in a
deployment never silently falls back to "no limit". Limits use 0 (or an empty list) for "no
limit". ``load_settings()`` reads the sources every call (a few microseconds without a file):
settings changed in the environment apply without restarting, and tests can set them per test.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli, if installed, is the same parser
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

SETTINGS_ENV = "SAMON_SETTINGS"
DEFAULT_SETTINGS_FILE = "samon.toml"
ENV_PREFIX = "SAMON_"


class QueueBackend(str, enum.Enum):
    """Where queued runs wait (``samon_core.service.jobs`` builds the huey instance from it)."""

    SQLITE = "sqlite"  # <runs_dir>/.queue/huey.db: embedded, durable, one machine
    REDIS = "redis"  # a Redis server: several machines share one queue


class DevicePolicy(str, enum.Enum):
    """Which devices runs may ask for on this server."""

    ANY = "any"  # every RunConfig.device value is accepted
    CPU_ONLY = "cpu-only"  # device auto/cpu only; the worker pool hides the GPUs
    GPU_ONLY = "gpu-only"  # device auto/cuda/cuda:N only; no worker is started without a GPU


def _f(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class Settings:
    """All settings. Frozen; ``load_settings()`` builds one from the sources above."""

    # --- queue -----------------------------------------------------------------------------
    queue: QueueBackend = _f(
        QueueBackend.SQLITE,
        "Queue backend: 'sqlite' (a file in the run store, one machine) or 'redis' (shared by "
        "workers on several machines; see docs/deployment.md).",
    )
    redis_url: str = _f(
        "redis://127.0.0.1:6379/0",
        "Redis server of the 'redis' backend (redis://[:password@]host:port/db).",
    )
    queue_name: str = _f(
        "samon",
        "Name of the queue inside the backend: two labs sharing one Redis server use two names.",
    )
    # --- limits (0 or empty = no limit) ---------------------------------------------------
    max_queued_per_owner: int = _f(
        0, "Runs one owner may have waiting or training at once (0 = no limit).", ge=0
    )
    max_queue: int = _f(0, "Runs that may wait in the queue in total (0 = no limit).", ge=0)
    max_epochs: int = _f(0, "Largest RunConfig.epochs accepted (0 = no limit).", ge=0)
    max_train_subset: int = _f(
        0,
        "Most training images per run, train_subset=0 (the whole set) counting as its full size "
        "(0 = no limit).",
        ge=0,
    )
    max_model_params: int = _f(
        0,
        "Largest model, in parameters at 100 classes (0 = no limit; a non-zero value makes "
        "submit import torch once to count them).",
        ge=0,
    )
    allowed_models: tuple[str, ...] = _f(
        (), "Model names that may be trained (empty = every registered model)."
    )
    device_policy: DevicePolicy = _f(
        DevicePolicy.ANY, "Devices runs may ask for: 'any', 'cpu-only' or 'gpu-only'."
    )
    # --- reuse ------------------------------------------------------------------------------
    share_active: bool = _f(
        True,
        "Identical requests share a queued or running run instead of queueing a copy (finished "
        "identical runs are always reused when submit(reuse=True)).",
    )
    # --- workers and recovery ---------------------------------------------------------------
    start_workers: bool = _f(
        True,
        "The app starts a local worker pool when no worker is alive; 0 for deployments whose "
        "workers run as services.",
    )
    worker_devices: str = _f(
        "auto",
        "Devices of the local pool: 'auto' (one worker per GPU, else one CPU worker), 'cpu', or "
        "GPU indices like '0,1'.",
    )
    heartbeat_timeout_s: float = _f(
        30.0,
        "A worker or run whose heartbeat is older than this is dead (on another machine; on the "
        "same machine a vanished pid is detected at once).",
        gt=0.0,
    )
    heartbeat_every_s: float = _f(2.0, "Seconds between two worker heartbeats.", gt=0.0)
    poll_s: float = _f(
        0.5, "Seconds an idle worker waits between two looks at a SQLite queue.", gt=0.0
    )
    recover_every_s: float = _f(
        10.0, "Seconds between two crash-recovery sweeps by each worker (and at most by the app).",
        ge=0.0,
    )
    auto_resume: bool = _f(
        True,
        "Re-queue a run whose worker died, to continue from its last checkpoint (else it stays "
        "'interrupted' until resumed by hand).",
    )
    max_auto_resumes: int = _f(
        3,
        "Automatic resumes per run; a run that keeps killing its worker then stays interrupted.",
        ge=0,
    )
    stop_grace_s: float = _f(
        30.0,
        "Seconds the pool waits at shutdown for its workers to put their runs back in the queue "
        "before killing them.",
        gt=0.0,
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            for key, ok, text in (
                ("ge", lambda v, b: v >= b, ">="),
                ("gt", lambda v, b: v > b, ">"),
            ):
                bound = spec.metadata.get(key)
                if bound is not None and not ok(value, bound):
                    raise ValueError(f"setting {spec.name} must be {text} {bound}; got {value!r}")
        if not self.queue_name or not self.queue_name.replace("_", "").isalnum():
            raise ValueError(
                f"setting queue_name must be letters, digits and '_'; got {self.queue_name!r}"
            )

    def describe(self) -> dict[str, Any]:
        """Plain values (enums as strings) for display and logs."""
        out = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            out[spec.name] = value.value if isinstance(value, enum.Enum) else value
        return out

    def to_environ(self) -> dict[str, str]:
        """These settings as ``SAMON_*`` environment variables: the worker pool hands them to its
        child processes, so that workers started by the app use exactly the app's settings."""
        out = {}
        for name, value in self.describe().items():
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            out[env_name(name)] = text
        return out


FIELD_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in dataclasses.fields(Settings)}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _convert(name: str, value: Any, source: str) -> Any:
    """``value`` (a TOML value or an environment string) as the type of field ``name``."""
    spec = {f.name: f for f in dataclasses.fields(Settings)}[name]
    default = spec.default
    where = f"setting {name} (from {source})"
    try:
        if isinstance(default, enum.Enum):
            return type(default)(str(value).strip().lower())
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, (bool, float)):
                raise ValueError
            return int(str(value).strip(), 10)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, tuple):
            items = value if isinstance(value, list) else str(value).split(",")
            return tuple(str(s).strip() for s in items if str(s).strip())
        if not isinstance(value, str):
            raise ValueError
        return value.strip()
    except ValueError:
        allowed = ""
        if isinstance(default, enum.Enum):
            allowed = "; one of " + ", ".join(m.value for m in type(default))
        raise ValueError(f"{where}: cannot use {value!r}{allowed}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    if tomllib is None:
        raise ValueError(f"reading {path} needs Python 3.11+ (tomllib) or the tomli package")
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    table = data.get("samon", data)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [samon] must be a table")
    return {k: v for k, v in table.items() if k != "samon"}


def settings_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The TOML file that applies: ``$SAMON_SETTINGS`` or ``./samon.toml`` if it exists."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(SETTINGS_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ValueError(f"{SETTINGS_ENV}={explicit!r} is not a file")
        return path
    local = Path(DEFAULT_SETTINGS_FILE)
    return local if local.is_file() else None


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the defaults, the TOML file and the environment (see the module docstring);
    ``overrides`` (field=value, already typed) win over all of them."""
    environ = os.environ if environ is None else environ
    names = [f.name for f in dataclasses.fields(Settings)]
    values: dict[str, Any] = {}
    path = settings_file(environ)
    if path is not None:
        for key, value in _read_toml(path).items():
            if key not in names:
                raise ValueError(
                    f"{path}: unknown setting {key!r}; known settings: {', '.join(names)}"
                )
            values[key] = _convert(key, value, str(path))
    for name in names:
        var = env_name(name)
        # An empty variable means "not set" (e.g. ``SAMON_MAX_EPOCHS=`` in a compose file).
        if environ.get(var, "").strip():
            values[name] = _convert(name, environ[var], f"${var}")
    values.update(overrides)
    return Settings(**values)
