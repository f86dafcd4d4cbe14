"""The limits of a shared server (settings.py), checked before anything is created.

A request over a limit raises ``LimitExceeded`` naming the limit, its value and the environment
variable that sets it, and nothing is queued.
"""

from __future__ import annotations

from typing import Any

from samon_core.catalog import DATASET_SIZES
from samon_core.runs.config import RunConfig
from samon_core.runs.states import ACTIVE_STATES, RunState
from samon_core.service.scan import RunRow
from samon_core.service.settings import DevicePolicy, Settings, env_name, load_settings


class LimitExceeded(ValueError):
    """A request over a server limit. ``limit`` is the setting's name, ``value`` its value; the
    message names both (and the environment variable that sets it)."""

    def __init__(self, limit: str, value: Any, detail: str):
        self.limit = limit
        self.value = value
        super().__init__(
            f"limit {limit} = {value} (setting {limit!r}, ${env_name(limit)}): {detail}; nothing "
            "was queued"
        )


def train_images(config: RunConfig) -> int:
    """Training images a run uses (``train_subset=0`` = the whole set)."""
    full = DATASET_SIZES[config.dataset][0]
    return min(config.train_subset, full) if config.train_subset else full


def _check_device(config: RunConfig, s: Settings) -> None:
    device = config.device
    if s.device_policy is DevicePolicy.CPU_ONLY and device not in ("auto", "cpu"):
        raise LimitExceeded("device_policy", s.device_policy.value,
                            f"device {device!r} is not allowed here; use 'auto' or 'cpu'")
    if s.device_policy is DevicePolicy.GPU_ONLY and device in ("cpu", "mps"):
        raise LimitExceeded("device_policy", s.device_policy.value,
                            f"device {device!r} is not allowed here; use 'auto' or 'cuda'")


def check_config_limits(config: RunConfig, settings: Settings | None = None) -> None:
    """Raise ``LimitExceeded`` if ``config`` asks for more than this server allows (epochs,
    training images, model, model size, device). Queue limits: ``check_queue_limits``."""
    s = settings or load_settings()
    if s.max_epochs and config.epochs > s.max_epochs:
        raise LimitExceeded("max_epochs", s.max_epochs,
                            f"this run asks for {config.epochs} epochs")
    if s.max_train_subset:
        n = train_images(config)
        if n > s.max_train_subset:
            whole = "" if config.train_subset else " (train_subset=0 means the whole training set)"
            raise LimitExceeded("max_train_subset", s.max_train_subset,
                                f"this run asks for {n} training images{whole}")
    if s.allowed_models and config.model not in s.allowed_models:
        raise LimitExceeded("allowed_models", ",".join(s.allowed_models),
                            f"model {config.model!r} is not among the allowed models")
    if s.max_model_params:
        from samon_core.models import model_info  # imports torch: only when this limit is set

        n_params = int(model_info(config.model)["num_params"])
        if n_params > s.max_model_params:
            raise LimitExceeded("max_model_params", s.max_model_params,
                                f"model {config.model!r} has {n_params:,} parameters")
    _check_device(config, s)


def check_queue_limits(rows: list[RunRow], owner: str, n_new: int, s: Settings) -> None:
    """Raise ``LimitExceeded`` if ``n_new`` more runs of ``owner`` would overfill the queue
    (``max_queue``) or the owner's share of it (``max_queued_per_owner``)."""
    if n_new <= 0:
        return
    if s.max_queue:
        waiting = sum(r.state == RunState.QUEUED for r in rows)
        if waiting + n_new > s.max_queue:
            raise LimitExceeded("max_queue", s.max_queue,
                                f"{waiting} runs are waiting and this request adds {n_new}")
    if s.max_queued_per_owner:
        active = sum(r.owner == owner and r.state in ACTIVE_STATES for r in rows)
        if active + n_new > s.max_queued_per_owner:
            raise LimitExceeded("max_queued_per_owner", s.max_queued_per_owner,
                                f"{owner!r} has {active} runs queued or running and this request "
                                f"adds {n_new}")
