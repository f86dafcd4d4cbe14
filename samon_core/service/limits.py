"""The limits of a shared server (settings.py), checked wherever work starts.

``submit`` checks them before anything is created (the queue limits in the transaction that
admits the runs: admission.py); ``samon run`` before it creates a run folder;
a worker before it trains a run (a run that never passed them, or was queued under laxer
settings, ends 'failed' with the reason). A request over a limit raises ``LimitExceeded`` naming
the limit, its value and the environment variable that sets it. No torch: model sizes come from
the catalog. The teacher's room locks (room.py) raise a ``LimitExceeded`` too.
"""

from __future__ import annotations

from typing import Any

from samon_core.catalog import DATASET_SIZES, MODELS
from samon_core.runs.config import RunConfig
from samon_core.runs.messages import clip
from samon_core.service.settings import DevicePolicy, Settings, env_name, load_settings

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
