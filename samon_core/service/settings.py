"""Server settings: the database, the worker pool and the limits of a shared server.

No torch, no streamlit: the app, the CLI and the workers all read these.

Where a value comes from, later sources winning:

1. the defaults below (good for one person on a laptop: SQLite in the run store, no tight
   limits);
2. a TOML file: ``$SAMON_SETTINGS`` if set (it must exist), else ``./samon.toml`` if present.
   Keys are the field names, at the top level or inside a ``[samon]`` table, e.g.::

       database_url = "postgresql+psycopg://samon:PASSWORD@10.0.0.5/samon"
       max_epochs = 30
       allowed_models = ["tiny_resnet", "resnet20"]
       device_policy = "gpu-only"

3. environment variables ``SAMON_<FIELD NAME IN CAPITALS>``, e.g. ``SAMON_MAX_EPOCHS=30``,
   ``SAMON_ALLOWED_MODELS=tiny_resnet,resnet20``, ``SAMON_START_WORKERS=0`` (booleans: 1/0,
   true/false, yes/no, on/off; an empty variable counts as unset);
4. keyword arguments of ``load_settings`` (already typed values, e.g. from command-line options).

``Settings`` is a pydantic-settings ``BaseSettings``: the sources above, merged once
(``SettingsSources``), are its settings source (``settings_customise_sources``; ``load_settings``
reads the same of any mapping), the constraints are ``Field`` constraints. Numbers are strict
(pydantic's ``strict=True``): ``5.0`` or ``true`` for a limit is refused, while text (the
environment, or a number in quotes) is read as pydantic reads strings (``"30"``, ``" 30 "``,
``"5.0"``). A misspelt key or a bad value raises ``ValueError`` naming the setting, the source
and what is allowed (``fieldspec.error_messages``, the same formatter as ``RunConfig``'s), so a
typo in a deployment never silently falls back to "no limit". Limits use 0 (or an empty list)
for "no limit". ``load_settings()`` reads the sources every call: settings changed in the
environment apply without restarting, and tests pass their own environment as an argument.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    Strict,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from samon_core.runs.fieldspec import error_messages, field_specs, quote
from samon_core.runs.redact import display_url

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SETTINGS_ENV = "SAMON_SETTINGS"
DEFAULT_SETTINGS_FILE = "samon.toml"
ENV_PREFIX = "SAMON_"
# Upper bounds of the intervals: beyond them a value is a typo (and inf would overflow a wait).
_HOUR = 3600.0
_DAY = 86400.0
_DATABASE_SCHEMES = ("sqlite:", "postgresql:", "postgresql+")
MAX_WORKERS_PER_DEVICE = 8
TEACHER_TOKEN_MIN_CHARS = 12
# Settings whose value is a secret: never quoted in an error, never handed to worker processes.
SECRET_SETTINGS = frozenset({"teacher_token"})
# URLs that may hold a password: shown only as ``display_url`` gives them, handed to workers.
URL_SETTINGS = frozenset({"database_url"})


class DevicePolicy(str, enum.Enum):
    """Which devices runs may ask for on this server."""

    ANY = "any"  # every RunConfig.device value is accepted
    CPU_ONLY = "cpu-only"  # device auto/cpu only; the worker pool hides the GPUs
    GPU_ONLY = "gpu-only"  # device auto/cuda/cuda:N only; no worker is started without a GPU


def env_name(field_name: str) -> str:
    """The environment variable of a setting: ``max_epochs`` -> ``SAMON_MAX_EPOCHS``."""
    return ENV_PREFIX + field_name.upper()


class ValuesSource(PydanticBaseSettingsSource):
    """A settings source of ready values (the keyword arguments of ``load_settings``); ``where``
    says where a value came from, for a message."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]):
        super().__init__(settings_cls)
        self.values = dict(values)

    def where(self, name: str) -> str:
        return "argument"

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class EnvironSource(ValuesSource):
    """The ``SAMON_*`` variables of a mapping (``os.environ`` or a test's dict), as text. A
    variable that is empty or blank counts as unset (e.g. ``SAMON_MAX_EPOCHS=`` in a compose
    file); names are matched whatever their case, as pydantic-settings' own source does."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        given = {k.upper(): v for k, v in environ.items() if isinstance(v, str) and v.strip()}
        super().__init__(settings_cls, {name: given[env_name(name)]
                                        for name in settings_cls.model_fields
                                        if env_name(name) in given})

    def where(self, name: str) -> str:
        return f"${env_name(name)}"


class TomlSource(ValuesSource):
    """The settings file (None: no file): its ``[samon]`` table if it has one, else its top
    level. Every key is kept, so that a misspelt one is refused by name."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        data: dict[str, Any] = {}
        if path is not None:
            with path.open("rb") as file:
                data = tomllib.load(file)
        table = data.get("samon", data)
        if not isinstance(table, dict):
            raise ValueError(f"{path}: [samon] must be a table")
        super().__init__(settings_cls, {k: v for k, v in table.items() if k != "samon"})
        self.path = path

    def where(self, name: str) -> str:
        return str(self.path)


class SettingsSources(ValuesSource):
    """The sources' one merge, the first having a value winning: keyword arguments, the
    ``SAMON_*`` variables of ``environ``, the TOML file ``environ`` names (``settings_file``);
    ``where``: the source a value came from. ``Settings()`` and ``load_settings`` read it."""

    def __init__(self, settings_cls: type[BaseSettings], arguments: Mapping[str, Any],
                 environ: Mapping[str, str]):
        self.sources = (ValuesSource(settings_cls, arguments),
                        EnvironSource(settings_cls, environ),
                        TomlSource(settings_cls, settings_file(environ)))
        merged: dict[str, Any] = {}
        for source in reversed(self.sources):
            merged.update(source.values)
        super().__init__(settings_cls, merged)

    def where(self, name: str) -> str:
        return next((s.where(name) for s in self.sources if name in s.values), "default")


class Settings(BaseSettings):
    """All settings. Frozen. Build them with ``load_settings()``, which reads the sources above,
    explains a bad value in one line and reuses the result while the sources are unchanged
    (``Settings()`` reads the same sources but raises pydantic's ``ValidationError``)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",  # a misspelt key in the file is an error, not "no limit"
        str_strip_whitespace=True,
        hide_input_in_errors=True,  # pydantic's own message would quote the teacher token
    )

    # --- the database ----------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        None,
        description="The database of runs and the queue: unset = SQLite in <runs_dir>/samon.db "
        "(one machine); postgresql+psycopg://user:password@host/db for a room of machines "
        "sharing it (docs/deployment.md). The password is never shown.")
    # --- limits (0 or empty = no limit) ---------------------------------------------------
    max_queued_per_owner: int = Field(
        0, ge=0, strict=True,
        description="Runs one owner may have waiting or training at once (0 = no limit).")
    max_queue: int = Field(
        0, ge=0, strict=True, description="Runs that may wait in the queue in total (0 = no limit)."
    )
    max_new_names_per_hour: int = Field(
        120, ge=0, strict=True,
        description="Owner names that may be registered per hour (a guest's first launch "
        "registers a visitor name): each new name gets its own per-owner quota and its own turn "
        "in the fair queue, so fresh names must not be free (0 = no limit).",
    )
    max_epochs: int = Field(
        0, ge=0, strict=True, description="Largest RunConfig.epochs accepted (0 = no limit)."
    )
    max_train_subset: int = Field(
        0, ge=0, strict=True,
        description="Most training images per run, train_subset=0 (the whole set) counting as its "
        "full size (0 = no limit).",
    )
    max_model_params: int = Field(
        0, ge=0, strict=True,
        description="Largest model, in parameters at 100 classes (0 = no limit; a non-zero value "
        "makes submit import torch once to count them).",
    )
    allowed_models: tuple[str, ...] = Field(
        (),
        description="Model names that may be trained (empty = every registered model); in the "
        "environment a comma-separated list.",
    )
    device_policy: DevicePolicy = Field(
        DevicePolicy.ANY,
        description="Devices runs may ask for: 'any', 'cpu-only' or 'gpu-only'.",
    )
    local_checks: bool | None = Field(
        None,
        description="submit checks on this machine that a run's device exists and its dataset "
        "files are there (or downloadable). Unset: yes with SQLite (its workers run here), no "
        "with PostgreSQL (workers elsewhere may differ; they fail such a run instead).",
    )
    # --- the teacher ------------------------------------------------------------------------
    teacher_token: SecretStr | None = Field(
        None,
        description="The teacher's secret (at least 12 characters; e.g. `openssl rand -base64 "
        "24`): whoever gives it may cancel or delete any run, set the room's locks and act as "
        "owner 'teacher'. Unset: nobody is a teacher. Never shown or logged; the app's worker "
        "processes do not get it.",
    )
    # --- reuse ------------------------------------------------------------------------------
    share_active: bool = Field(
        True,
        description="Identical requests share a queued or running run instead of queueing a copy "
        "(finished identical runs are always reused when submit(reuse=True)).",
    )
    # --- workers and recovery ---------------------------------------------------------------
    start_workers: bool = Field(
        True,
        description="The app starts a local worker pool when no worker is alive; 0 for "
        "deployments whose workers run as services.",
    )
    worker_devices: str = Field(
        "auto",
        description="Devices of the local pool: 'auto' (one worker per GPU, else one CPU worker), "
        "'cpu', or GPU indices like '0,1'.",
    )
    workers_per_device: int | Literal["auto"] = Field(
        "auto",
        description="Worker processes per device of the pool (1-8), each training its own runs: "
        "several small runs share a GPU that one would leave mostly idle. 'auto': 1 on a CPU, "
        "on a GPU as many as its free memory holds for the largest allowed model, at most 4 "
        "(samon_core/service/pool.py).")
    lockstep_max_runs: int = Field(
        6, ge=1, le=32, strict=True,
        description="Runs of one comparison a worker trains together, interleaved step by step "
        "(same load for every run, curves side by side); 1 trains one run at a time.")
    fair_window_s: float = Field(
        3 * _HOUR, gt=0.0, le=30 * _DAY, allow_inf_nan=False, strict=True,
        description="Seconds of device time the fair queue looks back on (a workshop session): "
        "a free worker takes the oldest queued run of the owner who used the least device time "
        "in it (scheduler.py), so one student's sweep does not make the room wait.")
    heartbeat_timeout_s: float = Field(
        30.0, gt=0.0, le=_DAY, allow_inf_nan=False, strict=True,
        description="A worker whose heartbeat is older than this is dead and its runs are "
        "queued again (on the same machine a vanished pid is detected at once).")
    heartbeat_every_s: float = Field(
        2.0, gt=0.0, le=_HOUR, allow_inf_nan=False, strict=True,
        description="Seconds between two worker heartbeats."
    )
    poll_s: float = Field(
        0.5, gt=0.0, le=_HOUR, allow_inf_nan=False, strict=True,
        description="Seconds an idle worker waits between two looks at the queue."
    )
    recover_every_s: float = Field(
        10.0, ge=0.0, le=_DAY, allow_inf_nan=False, strict=True,
        description="Seconds between two crash-recovery sweeps by each worker (and at most by "
        "the app).")
    auto_resume: bool = Field(
        True,
        description="Re-queue a run whose worker died, to continue from its last checkpoint (else "
        "it stays 'interrupted' until resumed by hand).",
    )
    max_auto_resumes: int = Field(
        3, ge=0, strict=True,
        description="Automatic resumes per run; a run that keeps killing its worker then stays "
        "interrupted.",
    )
    stop_grace_s: float = Field(
        30.0, gt=0.0, le=_HOUR, allow_inf_nan=False, strict=True,
        description="Seconds the pool waits at shutdown for its workers to put their runs back in "
        "the queue before killing them.")

    # --- sources ----------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, ``SAMON_*`` variables, the TOML file (first wins), of this
        process's environment, as one source (``load_settings`` reads it of any mapping)."""
        return (SettingsSources(settings_cls, init_settings(), os.environ),)

    # --- value checks beyond the types ------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _numbers_from_text(cls, values: Any) -> Any:
        # Numbers are strict (no 5.0 or true for a limit), but the environment is text: a
        # number given as text is read as pydantic reads strings ("30", " 30 ", "5.0"); text it
        # cannot read is left for the strict field to refuse, naming what is allowed.
        if not isinstance(values, dict):
            return values
        out = dict(values)
        for name, value in values.items():
            if isinstance(value, str) and name in _NUMBER_TEXT:
                with contextlib.suppress(ValidationError):
                    out[name] = _NUMBER_TEXT[name].validate_strings(value)
        return out

    @field_validator("device_policy", mode="before")
    @classmethod
    def _enum_value(cls, value: Any, info: Any) -> Any:
        kind = cls.model_fields[info.field_name].annotation
        if isinstance(value, kind):
            return value
        text = str(value).strip().lower() if isinstance(value, str) else value
        allowed = [m.value for m in kind]
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _name_list(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return value  # pydantic says what is wrong with it
        return tuple(str(s).strip() for s in items if str(s).strip())

    @field_validator("teacher_token")
    @classmethod
    def _teacher_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < TEACHER_TOKEN_MIN_CHARS:
            raise ValueError(f"must be at least {TEACHER_TOKEN_MIN_CHARS} characters (a short "
                             "token can be guessed)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        text = value.get_secret_value().strip()
        if not text.startswith(_DATABASE_SCHEMES) or any(c.isspace() for c in text):
            raise ValueError("must be a URL like postgresql+psycopg://user:password@host/db "
                             "(or sqlite:///path)")
        return SecretStr(text)

    @field_validator("workers_per_device", mode="before")
    @classmethod
    def _workers_per_device(cls, value: Any) -> Any:
        # One check with one message: 'auto' or a whole number in 1..MAX_WORKERS_PER_DEVICE
        # (more processes than that on one device only share it thinner).
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text.isdecimal():
            text = int(text)
        if (isinstance(text, bool) or not isinstance(text, int)
                or not 1 <= text <= MAX_WORKERS_PER_DEVICE):
            raise ValueError(f"must be 'auto' or a whole number from 1 to "
                             f"{MAX_WORKERS_PER_DEVICE}")
        return text

    @property
    def checks_here(self) -> bool:
        """Whether submit checks devices and data on this machine (``local_checks``)."""
        if self.local_checks is not None:
            return self.local_checks
        return self.database_url is None or self.database_url.get_secret_value().startswith(
            "sqlite")

    @property
    def database(self) -> str | None:
        """The configured database URL (with its password), None for the run store's SQLite."""
        return None if self.database_url is None else self.database_url.get_secret_value()

    # --- output -----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Plain values for display and logs (enums as strings, URLs without their password)."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            value = display_url(value) if name in URL_SETTINGS and value is not None else value
            out[name] = value.value if isinstance(value, enum.Enum) else value
        return out

    def to_environ(self) -> dict[str, str]:
        """These settings as ``SAMON_*`` environment variables: the worker pool hands them to its
        child processes, so that workers started by the app use exactly the app's settings.
        Secrets (the teacher token) are blank (= unset): workers never need them, and the blank
        hides a value the children would otherwise inherit from this process's environment."""
        out = {}
        for name, value in self.describe().items():
            if name in URL_SETTINGS and value is not None:  # workers need the password
                value = getattr(self, name).get_secret_value()
            if value is None or name in SECRET_SETTINGS:
                text = ""  # an empty variable counts as unset
            elif isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            out[env_name(name)] = text
        return out


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


# Settings of the last few source states. Building a Settings costs about a millisecond, and the
# job API loads them on nearly every call; the key holds everything a value can come from (the
# SAMON_* variables, the file's path, size and mtime), so a change applies at the next call.
_CACHE: dict[tuple[Any, ...], Settings] = {}
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def _sources_key(environ: Mapping[str, str], path: Path | None) -> tuple[Any, ...]:
    env = tuple(sorted((k, v) for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)))
    if path is None:
        return (env, None)
    st = path.stat()
    return (env, str(path.resolve()), st.st_mtime_ns, st.st_size)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the defaults, the TOML file and the environment (see the module docstring);
    ``environ`` replaces ``os.environ`` (tests, the workers' children); ``overrides`` (field=value,
    already typed) win over all of them. ``ValueError`` names each bad setting, where it came
    from and what is allowed."""
    environ = os.environ if environ is None else environ
    path = settings_file(environ)
    key = None if overrides else _sources_key(environ, path)
    if key is not None and (cached := _CACHE.get(key)) is not None:
        return cached
    # Settings()'s source, of this call's environment (model_validate reads no other source).
    sources = SettingsSources(Settings, overrides, environ)
    try:
        settings = Settings.model_validate(sources())
    except ValidationError as exc:
        raise ValueError("\n".join(message for _, message in error_messages(
            exc.errors(), _SPECS,
            subject=lambda name: f"setting {name} (from {sources.where(name)})",
            unknown=lambda name: f"unknown setting(s) (from {sources.where(name)})",
            shown=_shown,
        ))) from None
    if key is not None:
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = settings
    return settings


def _shown(name: str, value: Any) -> str:
    """A bad value as a message quotes it: a secret not at all, a URL without its password (a
    mistyped URL still holds one)."""
    if name in SECRET_SETTINGS:
        return "(hidden)"
    return quote(display_url(str(value))) if name in URL_SETTINGS else quote(value)


# The fields as the error messages see them, and the strict numbers that text is read into.
_SPECS = {spec.name: spec for spec in field_specs(Settings)}
_NUMBER_TEXT = {
    name: TypeAdapter(info.annotation) for name, info in Settings.model_fields.items()
    if any(isinstance(m, Strict) for m in info.metadata)
}
