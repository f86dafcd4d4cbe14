"""View models for the app: pure, torch-free preparation of what the pages show.

No streamlit and no torch here (pandas and numpy only, imported lazily where a function needs
them), so every function can be unit-tested and the pages stay thin:

* the launch form: its fields, defaults (the quick demo), turning the form's plain values into one
  ``RunConfig`` per method with the errors keyed by form field (``form_configs``), time estimates;
* ``RunReader``: a thread-safe, incremental, throttled reader of run metrics shared by all browser
  sessions of one server (each poll reads only the bytes appended since the last one, and at most
  once per ``min_interval_s`` however many browsers ask);
* chart data: smoothing, mean +/- std across seeds, gamma histograms on fixed axes, per-layer
  gamma means, step-time summaries;
* the results table in the paper's format and the CSV / JSON exports.

Figures are built from these in ``samon_app.charts``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from samon_core.runs.config import (
    CHOICES,
    DATASET_SIZES,
    MODEL_SECONDS_PER_IMAGE_CPU,
    RunConfig,
    estimate_seconds,
    paper_rho,
)
from samon_core.runs.store import (
    TERMINAL_STATES,
    RunStore,
    epochs_frame,
    norm_stats_records,
    resolve_resumes,
    sharpness_frame,
    steps_frame,
)

if TYPE_CHECKING:  # pandas is imported lazily (the form helpers do not need it)
    import pandas as pd

# ---------------------------------------------------------------------------------------------
# methods, models, variants: the vocabulary of the UI
# ---------------------------------------------------------------------------------------------

# Form name of a method -> the RunConfig changes that make it. Order = display order.
METHODS: dict[str, dict[str, str]] = {
    "SGD": {"method": "base"},
    "SAM-all": {"method": "sam", "scope": "all"},
    "SAM-ON": {"method": "sam", "scope": "norm"},
    "no-norm": {"method": "sam", "scope": "no-norm"},
    "random mask": {"method": "sam", "scope": "random"},
}
METHOD_HELP: dict[str, str] = {
    "SGD": "the base optimizer alone (one gradient per step): the baseline",
    "SAM-all": "SAM perturbing every parameter (the usual SAM)",
    "SAM-ON": "SAM perturbing only the normalization layers' gamma and beta",
    "no-norm": "SAM perturbing every parameter except gamma and beta (control)",
    "random mask": "SAM on a random set of parameters as small as SAM-ON's (control)",
}
# Form key of each SAM method's rho input.
RHO_KEYS: dict[str, str] = {
    "SAM-all": "rho_all",
    "SAM-ON": "rho_norm",
    "no-norm": "rho_nonorm",
    "random mask": "rho_random",
}

# One colour per method family, the same on every chart (vanilla grey, SAM-all blue, SAM-ON
# orange, no-norm green, random mask purple).
METHOD_COLORS: dict[str, str] = {
    "sgd": "#6c757d",
    "all": "#1c7ed6",
    "norm": "#e8590c",
    "no-norm": "#2f9e44",
    "random": "#7048e8",
}
METHOD_KEY_ORDER = ("sgd", "all", "norm", "no-norm", "random")
# Further colours for charts that colour by something other than the method family.
PALETTE = (
    "#e8590c", "#1c7ed6", "#2f9e44", "#7048e8", "#c2255c", "#0c8599", "#f08c00", "#5c940d",
    "#862e9c", "#364fc7", "#a61e4d", "#087f5b", "#6c757d", "#d9480f", "#1864ab",
)

# Models the form offers (torch-free mirror of the model registry; the worker checks the name).
MODEL_INFO: dict[str, dict[str, Any]] = {
    "tiny_resnet": {
        "label": "Tiny ResNet (~23k parameters, fine on a CPU)",
        "norms": ("batchnorm", "groupnorm", "layernorm"),
        "cpu": True,
    },
    "resnet20": {
        "label": "ResNet-20 (~0.28M parameters, OK on a CPU)",
        "norms": ("batchnorm", "groupnorm", "layernorm"),
        "cpu": True,
    },
    "resnet56": {
        "label": "ResNet-56 (~0.86M parameters, GPU advised)",
        "norms": ("batchnorm", "groupnorm", "layernorm"),
        "cpu": False,
    },
    "wrn16_4": {
        "label": "WRN-16-4 (~2.7M parameters, GPU)",
        "norms": ("batchnorm", "groupnorm", "layernorm"),
        "cpu": False,
    },
    "wrn28_10": {
        "label": "WRN-28-10 (the paper's, ~36M parameters, GPU)",
        "norms": ("batchnorm", "groupnorm", "layernorm"),
        "cpu": False,
    },
    "vit_tiny": {
        "label": "Small ViT with LayerNorm (~1.8M parameters, GPU)",
        "norms": ("layernorm",),
        "cpu": False,
    },
}
for _name in MODEL_SECONDS_PER_IMAGE_CPU:  # a model added to the estimate table shows up too
    MODEL_INFO.setdefault(_name, {"label": _name, "norms": CHOICES["norm_layer"], "cpu": False})

DATASET_LABELS: dict[str, str] = {
    "synthetic": "Synthetic images (generated, no download; NOT CIFAR)",
    "cifar100": "CIFAR-100 (the paper's dataset; needs the files)",
    "cifar10": "CIFAR-10 (needs the files)",
}
SYNTHETIC_NOTE = (
    "Synthetic data: these runs train on generated images (smooth random patterns in 100 "
    "classes), not on CIFAR. They show how the methods behave, not the paper's accuracies."
)

# SAM variant shown in the form -> (adaptive, ball). Paper variants first.
SAM_VARIANTS: dict[str, tuple[str, str]] = {
    "SAM (p=2)": ("none", "l2"),
    "ASAM elementwise": ("elementwise", "l2"),
    "ASAM layerwise": ("layerwise", "l2"),
    "p=inf elementwise": ("elementwise", "linf"),
    "p=inf (no T_w)": ("none", "linf"),
    "p=inf layerwise": ("layerwise", "linf"),
}

OPTIMIZER_LABELS = {"sgd": "SGD with momentum", "adamw": "AdamW", "lion": "Lion"}
DEVICE_LABELS = {
    "auto": "auto (GPU if the worker has one)",
    "cpu": "CPU",
    "cuda": "CUDA GPU",
    "mps": "Apple GPU (MPS)",
}
MAX_SEEDS = 10

_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,39}$")
DEFAULT_OWNER = "guest"


def clean_owner(text: str | None) -> tuple[str, str | None]:
    """(owner name, error or None): surrounding blanks removed, empty -> 'guest'; a name must be
    1-40 letters, digits, blanks or ``_ . @ -``, starting with a letter or digit."""
    name = (text or "").strip()
    if not name:
        return DEFAULT_OWNER, None
    if not _OWNER_RE.match(name):
        return DEFAULT_OWNER, (
            "A user name is 1-40 letters, digits, blanks or _ . @ - (starting with a letter or "
            "digit); using 'guest' meanwhile."
        )
    return name, None


def method_key(config: RunConfig | Mapping[str, Any]) -> str:
    """'sgd', 'all', 'norm', 'no-norm' or 'random': the method family of a run."""
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    if get("method") == "base":
        return "sgd"
    return str(get("scope") or "all")


def method_color(key: str) -> str:
    return METHOD_COLORS.get(key, PALETTE[hash(key) % len(PALETTE)])


_LABEL_PREFIX_KEYS = (("SGD", "sgd"), ("AdamW", "sgd"), ("Lion", "sgd"), ("SAM-all", "all"),
                      ("SAM-ON", "norm"), ("no-norm", "no-norm"), ("random mask", "random"))


def method_sort_key(label: str, key: str = "") -> tuple[int, str]:
    """Display order: vanilla, SAM-all, SAM-ON, no-norm, random mask (then by label). ``key``
    is the method family; without it the family is guessed from the label."""
    if not key:
        key = next((k for prefix, k in _LABEL_PREFIX_KEYS if label.startswith(prefix)), "")
    order = METHOD_KEY_ORDER.index(key) if key in METHOD_KEY_ORDER else len(METHOD_KEY_ORDER)
    return order, label


def format_duration(seconds: float | None) -> str:
    """'45 s', '3 min', '1 h 20 min', '2 d 4 h'; '?' for None / NaN."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "?"
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(round(s / 3600), 24)
    return f"{d} d {h} h" if h else f"{d} d"


def format_pct(frac: float | None, digits: int = 1) -> str:
    if frac is None or not isinstance(frac, (int, float)) or not math.isfinite(frac):
        return "-"
    return f"{100 * frac:.{digits}f}%"


# ---------------------------------------------------------------------------------------------
# the launch form
# ---------------------------------------------------------------------------------------------

QUICK_DEMO = "cpu-quick-demo"


def _quick_demo_base() -> RunConfig:
    from samon_core.runs.presets import get_preset

    configs = get_preset(QUICK_DEMO).configs
    return next(iter(configs.values())).replace(method="base")


# Form fields that are RunConfig fields with the same name.
FORM_CONFIG_FIELDS: tuple[str, ...] = (
    "model",
    "norm_layer",
    "dataset",
    "train_subset",
    "test_subset",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "label_smoothing",
    "lr_schedule",
    "warmup_epochs",
    "augment",
    "seed",
    "device",
    "sharpness_every",
    "sharpness_samples",
    "sharpness_multi_steps",
    "log_every_s",
)


def form_defaults() -> dict[str, Any]:
    """The form's default values: the quick demo (tiny ResNet, synthetic data, SGD vs SAM-all vs
    SAM-ON, the paper's rho) so that an untouched form launches the quick demo."""
    base = _quick_demo_base()
    values: dict[str, Any] = {name: getattr(base, name) for name in FORM_CONFIG_FIELDS}
    values.update(
        methods=["SGD", "SAM-all", "SAM-ON"],
        variant="SAM (p=2)",
        seeds=1,
        **{key: None for key in RHO_KEYS.values()},
    )
    return values


def preset_form_values(configs: Mapping[str, RunConfig]) -> dict[str, Any]:
    """Form values that reproduce a preset as closely as the form can: its base settings, the
    methods it compares, its SAM variant and rho values (only the first variant of a preset that
    compares several)."""
    cfgs = list(configs.values())
    if not cfgs:
        return form_defaults()
    base = cfgs[0]
    values = form_defaults()
    values.update({name: getattr(base, name) for name in FORM_CONFIG_FIELDS})
    methods: list[str] = []
    variant = None
    rhos: dict[str, float | None] = {}
    for cfg in cfgs:
        for name, changes in METHODS.items():
            if changes.get("method") == cfg.method and (
                cfg.method == "base" or changes.get("scope") == cfg.scope
            ):
                if name not in methods:
                    methods.append(name)
                if cfg.method == "sam":
                    if variant is None:
                        variant = next(
                            (v for v, key in SAM_VARIANTS.items()
                             if key == (cfg.adaptive, cfg.ball)),
                            None,
                        )
                    rhos.setdefault(RHO_KEYS[name], cfg.rho)
    values["methods"] = [m for m in METHODS if m in methods]
    values["variant"] = variant or "SAM (p=2)"
    values.update(rhos)
    return values


@dataclass
class FormResult:
    """What ``form_configs`` makes of the form: one config per method (display label -> config),
    the number of seeds, and the errors keyed by form field (empty when all is well)."""

    configs: dict[str, RunConfig] = field(default_factory=dict)
    seeds: int = 1
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.configs)

    @property
    def n_runs(self) -> int:
        return len(self.configs) * self.seeds


_FIELD_IN_MESSAGE = re.compile(r"RunConfig\.(\w+)")


def _friendly(message: str) -> str:
    """'RunConfig.epochs must be an integer in [1, 400]; got 0' -> 'must be an integer in [1,
    400]; got 0'."""
    text = _FIELD_IN_MESSAGE.sub(lambda m: m.group(1).replace("_", " "), message, count=1)
    return text[:1].upper() + text[1:]


def _error_field(message: str, fallback: str) -> str:
    match = _FIELD_IN_MESSAGE.search(message)
    return match.group(1) if match else fallback


def form_configs(values: Mapping[str, Any]) -> FormResult:
    """Turn the form's plain values into one RunConfig per chosen method.

    ``values`` holds the keys of ``form_defaults()`` (missing keys take those defaults). Every
    problem is reported under the form key it belongs to (a RunConfig field name, ``methods``,
    ``seeds``, ``variant`` or a ``rho_*`` key), with a message a user can act on."""
    defaults = form_defaults()
    v = {**defaults, **{k: val for k, val in values.items() if k in defaults}}
    result = FormResult()
    errors = result.errors

    methods = [m for m in (v.get("methods") or []) if m in METHODS]
    if not methods:
        errors["methods"] = "Choose at least one method to train."
    seeds = v.get("seeds")
    if isinstance(seeds, float) and seeds.is_integer():
        seeds = int(seeds)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        errors["seeds"] = f"Number of seeds must be a whole number from 1 to {MAX_SEEDS}."
        seeds = 1
    result.seeds = seeds
    variant = v.get("variant")
    if variant not in SAM_VARIANTS:
        errors["variant"] = f"Choose one of: {', '.join(SAM_VARIANTS)}."
        variant = "SAM (p=2)"
    adaptive, ball = SAM_VARIANTS[variant]

    # 1. every field on its own (so that several bad fields are all reported at once)
    reference = _quick_demo_base()
    base_changes: dict[str, Any] = {}
    for name in FORM_CONFIG_FIELDS:
        value = v.get(name)
        if value is None:
            errors[name] = "This field is required."
            continue
        if isinstance(value, float) and value.is_integer() and isinstance(
            getattr(reference, name), int
        ) and not isinstance(getattr(reference, name), bool):
            value = int(value)
        try:
            reference.replace(**{name: value, "warmup_epochs": 0})
        except ValueError as exc:
            if _error_field(str(exc), name) == name:
                errors[name] = _friendly(str(exc))
                continue
        base_changes[name] = value
    for name in methods:
        key = RHO_KEYS.get(name)
        rho = v.get(key) if key else None
        if isinstance(rho, str):
            try:
                rho = float(rho) if rho.strip() else None
            except ValueError:
                errors[key] = f"rho for {name} must be a number (empty = the paper's value)."
                continue
        if rho is not None and (
            isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho >= 0
        ):
            errors[key] = f"rho for {name} must be a number >= 0 (empty = the paper's value)."
    model, norm = v.get("model"), v.get("norm_layer")
    norms = MODEL_INFO.get(model, {}).get("norms", ())
    if model in MODEL_INFO and norm not in norms and "norm_layer" not in errors:
        errors["norm_layer"] = (
            f"{model} is built with {' or '.join(MODEL_INFO[model]['norms'])} only."
        )
    if model not in MODEL_INFO and "model" not in errors:
        errors["model"] = f"Unknown model; choose one of {', '.join(MODEL_INFO)}."
    for key, cap in (("train_subset", 0), ("test_subset", 1)):
        n = base_changes.get(key)
        full = DATASET_SIZES.get(v.get("dataset"), (0, 0))[cap]
        if isinstance(n, int) and full and n > full and key not in errors:
            errors[key] = f"The {v.get('dataset')} set has only {full:,} images here (0 = all)."
    if errors:
        return result

    # 2. the base config (cross-field rules: warm-up < epochs, ...)
    try:
        base = RunConfig(**{**reference.to_dict(), **base_changes, "blocks": ()})
    except ValueError as exc:
        errors[_error_field(str(exc), "epochs")] = _friendly(str(exc))
        return result

    # 3. one config per method
    for name in methods:
        changes: dict[str, Any] = dict(METHODS[name])
        if changes["method"] == "sam":
            rho = v.get(RHO_KEYS[name])
            if isinstance(rho, str):
                rho = float(rho) if rho.strip() else None  # checked above
            changes.update(adaptive=adaptive, ball=ball, rho=rho)
        try:
            cfg = base.replace(**changes)
        except ValueError as exc:
            where = _error_field(str(exc), "methods")
            key = RHO_KEYS.get(name, where) if where == "rho" else where
            errors[key] = _friendly(str(exc))
            continue
        result.configs[cfg.method_label()] = cfg
    return result


def rho_hint(method: str, variant: str) -> tuple[float, str]:
    """(paper's best rho, source text) for a SAM method name of the form and a SAM variant."""
    adaptive, ball = SAM_VARIANTS.get(variant, ("none", "l2"))
    value, source = paper_rho(adaptive, ball, METHODS[method]["scope"])
    if source == "paper":
        where = "WRN-28-10, CIFAR-100"
        if method == "no-norm":
            where = "SAM-all's value"
        elif method == "random mask":
            where = "SAM-ON's value"
        return value, where
    return value, "our guess: the paper gives none for this variant"


def device_kind(device: str, worker_devices: Iterable[str] = ()) -> str:
    """'cpu', 'cuda' or 'mps' for a time estimate: the device asked for, or for 'auto' the best
    device among the workers' (CPU when none is known)."""
    if device.startswith("cuda"):
        return "cuda"
    if device in ("cpu", "mps"):
        return device
    kinds = {str(d).split(":", 1)[0].lower() for d in worker_devices}
    if "cuda" in kinds or "gpu" in kinds:
        return "cuda"
    if "mps" in kinds:
        return "mps"
    return "cpu"


def calibration(finished: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """How far ``config.estimate_seconds`` is off on this machine, per device kind: the median
    of measured / estimated training time over finished runs, and how many runs that is.
    ``finished`` holds rows with ``config`` (dict) and ``summary`` (with ``train_time_s`` and
    ``device``) as the app reads them."""
    ratios: dict[str, list[float]] = {}
    for row in finished:
        summary = row.get("summary") or {}
        measured = summary.get("train_time_s")
        if summary.get("state", "finished") != "finished" or not _finite(measured):
            continue
        kind = str(summary.get("device") or "cpu").split(":", 1)[0]
        if kind not in ("cpu", "cuda", "mps"):
            continue
        try:
            estimate = estimate_seconds(RunConfig.from_dict(row["config"]), kind)
        except (ValueError, KeyError):
            continue
        if estimate > 0 and measured > 0:
            ratios.setdefault(kind, []).append(float(measured) / estimate)
    return {k: (statistics.median(v), len(v)) for k, v in ratios.items()}


def estimate_group(
    configs: Mapping[str, RunConfig], seeds: int = 1, kind: str = "cpu", workers: int = 1,
    factors: Mapping[str, tuple[float, int]] | None = None,
) -> dict[str, Any]:
    """Rough time estimate of a comparison group: per label (one seed), the total of all runs,
    and the wall time when ``workers`` runs train side by side. ``factors`` (from
    ``calibration``) scale the table-based estimate to what finished runs took here."""
    factor, n_cal = (factors or {}).get(kind, (1.0, 0))
    per = {label: factor * estimate_seconds(cfg, kind) for label, cfg in configs.items()}
    total = sum(per.values()) * max(1, seeds)
    n = len(per) * max(1, seeds)
    parallel = max(1, min(workers, n)) if n else 1
    return {"per_run": per, "total_s": total, "wall_s": total / parallel, "kind": kind, "runs": n,
            "calibrated_on": n_cal}


# ---------------------------------------------------------------------------------------------
# reading runs: one shared, incremental, throttled reader
# ---------------------------------------------------------------------------------------------


@dataclass
class RunData:
    """Everything the charts need from one run's metrics (read-only; shared between sessions).

    ``version`` changes whenever new records arrived (it is the byte offset read so far). The
    DataFrames (``steps``, ``epochs``, ``sharpness``) are built on first use only; charts use
    the cheaper, memoised ``series``."""

    run_id: str
    version: int
    records: list[dict[str, Any]]
    gamma: list[dict[str, Any]]
    beta: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)  # records per kind
    _series: dict[tuple[str, str, str], tuple[list[float], list[float]]] = field(
        default_factory=dict, repr=False
    )

    def series(self, kind: str, x: str, y: str) -> tuple[list[float], list[float]]:
        """(xs, ys) of the ``kind`` records with finite numeric ``x`` and ``y``, sorted by x
        (stable). Memoised: RunData never changes, so charts of many sessions share the work."""
        key = (kind, x, y)
        hit = self._series.get(key)
        if hit is not None:
            return hit
        pairs = []
        for rec in self.records:
            if rec.get("kind") != kind:
                continue
            a, b = rec.get(x), rec.get(y)
            if _finite(a) and _finite(b):
                pairs.append((float(a), float(b)))
        pairs.sort(key=lambda p: p[0])
        out = ([p[0] for p in pairs], [p[1] for p in pairs])
        self._series[key] = out
        return out

    @functools.cached_property
    def steps(self) -> pd.DataFrame:
        return steps_frame(self.records)

    @functools.cached_property
    def epochs(self) -> pd.DataFrame:
        return epochs_frame(self.records)

    @functools.cached_property
    def sharpness(self) -> pd.DataFrame:
        return sharpness_frame(self.records)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def build_run_data(run_id: str, records: list[dict[str, Any]], version: int = 0) -> RunData:
    resolved = resolve_resumes(records)
    counts: dict[str, int] = {}
    for rec in resolved:
        kind = str(rec.get("kind"))
        counts[kind] = counts.get(kind, 0) + 1
    return RunData(
        run_id=run_id,
        version=version,
        records=resolved,
        gamma=norm_stats_records(resolved, "gamma"),
        beta=norm_stats_records(resolved, "beta"),
        counts=counts,
    )


@dataclass
class _Entry:
    lock: threading.Lock
    raw: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    checked: float = 0.0
    data: RunData | None = None


class RunReader:
    """Shared reader of run metrics for all sessions of one app server.

    ``get(run_id)`` returns the run's ``RunData``. The metrics file is read incrementally (only
    the bytes appended since the last read) and at most once per ``min_interval_s`` per run,
    however many sessions ask; frames are rebuilt only when records were added. Holds at most
    ``max_runs`` runs (least recently used dropped). Thread-safe."""

    def __init__(self, store: RunStore, *, min_interval_s: float = 0.4, max_runs: int = 256):
        self.store = store
        self.min_interval_s = min_interval_s
        self.max_runs = max_runs
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0  # number of file reads done (for tests and benchmarks)

    def _entry(self, run_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is None:
                entry = self._entries[run_id] = _Entry(lock=threading.Lock())
                while len(self._entries) > self.max_runs:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(run_id)
            return entry

    def get(self, run_id: str, *, max_age_s: float | None = None) -> RunData:
        """The run's data, at most ``max_age_s`` (default ``min_interval_s``) seconds old."""
        max_age = self.min_interval_s if max_age_s is None else max_age_s
        entry = self._entry(run_id)
        with entry.lock:
            now = time.monotonic()
            if entry.data is not None and now - entry.checked < max_age:
                return entry.data
            records, offset = self.store.read_records_since(run_id, entry.offset)
            self.reads += 1
            entry.checked = now
            if offset < entry.offset:  # the file was replaced: start again
                entry.raw = []
            if entry.data is None or records or offset != entry.offset:
                entry.raw.extend(records)
                entry.offset = offset
                entry.data = build_run_data(run_id, entry.raw, offset)
            return entry.data

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._entries.pop(run_id, None)


# ---------------------------------------------------------------------------------------------
# runs of a group / a selection, as the charts see them
# ---------------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """One run as the pages show it: identity, display label, colour and its state."""

    run_id: str
    label: str  # unique within the charted set
    method_label: str
    key: str  # method family ('sgd', 'all', 'norm', 'no-norm', 'random')
    color: str
    state: str
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def synthetic(self) -> bool:
        return self.config.get("dataset") == "synthetic"


def run_infos(rows: Iterable[Mapping[str, Any]]) -> list[RunInfo]:
    """``RunInfo`` for rows with keys run_id, state, config, meta, status, summary (as the app
    reads them), sorted by method family then seed, with unique labels: a method's label gets
    ' · seed N' when several seeds of it are shown, and ' · <run id>' when still ambiguous."""
    infos: list[RunInfo] = []
    for row in rows:
        config = dict(row.get("config") or {})
        meta = dict(row.get("meta") or {})
        try:
            label = RunConfig.from_dict(config).method_label()
        except ValueError:
            label = str(meta.get("label") or row["run_id"])
        key = method_key(config)
        infos.append(
            RunInfo(
                run_id=str(row["run_id"]),
                label=label,
                method_label=label,
                key=key,
                color=method_color(key),
                state=str((row.get("status") or {}).get("state") or row.get("state") or "unknown"),
                config=config,
                meta=meta,
                status=dict(row.get("status") or {}),
                summary=row.get("summary"),
            )
        )
    infos.sort(key=lambda r: (*method_sort_key(r.method_label, r.key), str(r.seed), r.run_id))
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.label] = counts.get(info.label, 0) + 1
    for info in infos:
        if counts[info.label] > 1:
            info.label = f"{info.label} · seed {info.seed}"
    seen: dict[str, int] = {}
    for info in infos:
        seen[info.label] = seen.get(info.label, 0) + 1
    for info in infos:
        if seen[info.label] > 1:
            info.label = f"{info.label} · {info.run_id}"
    return infos


def chart_signature(infos: Sequence[RunInfo], data: Mapping[str, RunData],
                    kinds: Sequence[str]) -> tuple:
    """What a chart of these runs depends on: each run's id, label, colour and number of
    records of ``kinds``. Equal signatures give equal charts, so a figure can be cached under
    it and shared by every session that shows the same runs."""
    out = []
    for info in infos:
        d = data.get(info.run_id)
        counts = tuple(d.counts.get(k, 0) for k in kinds) if d is not None else None
        out.append((info.run_id, info.label, info.color, counts))
    return tuple(out)


def run_progress(info: RunInfo, now: float | None = None) -> dict[str, Any]:
    """Progress line of a run: fraction done, text, ETA, whether it is active, and what happened
    to a run that did not finish (``problem``)."""
    status, cfg = info.status, info.config
    state = info.state
    epochs = cfg.get("epochs") or 0
    epoch = status.get("epoch") or 0
    progress = status.get("progress")
    if not isinstance(progress, (int, float)) or not math.isfinite(progress):
        progress = (epoch / epochs) if epochs else 0.0
    if state == "finished":
        progress = 1.0
    progress = min(1.0, max(0.0, float(progress)))
    eta = status.get("eta_s")
    text = {
        "queued": "waiting in the queue",
        "running": f"epoch {max(1, min(epoch, epochs))} of {epochs}" if epochs else "running",
        "finished": f"finished ({epochs} epochs)",
        "cancelled": f"cancelled after {epoch} of {epochs} epochs",
        "failed": "failed",
        "diverged": "diverged",
        "interrupted": f"interrupted after {epoch} of {epochs} epochs",
    }.get(state, state)
    if state == "running" and isinstance(eta, (int, float)) and math.isfinite(eta):
        text += f" · about {format_duration(eta)} left"
    problem = None
    message = str(status.get("message") or "").strip()
    if state == "failed":
        problem = f"This run failed: {message or 'the worker reported an error.'}"
    elif state == "diverged":
        problem = message or (
            "The loss became NaN or infinite, so training stopped. Try a smaller learning rate "
            "or rho."
        )
    elif state == "interrupted":
        problem = (
            "The worker training this run stopped (a crash or a restart) "
            + (f"({message}) " if message else "")
            + "before it finished. It continues from its last checkpoint when it is resumed."
        )
    elif state == "cancelled":
        problem = message and f"Cancelled: {message}" or "This run was cancelled."
    elif state == "unknown":
        problem = str(status.get("error") or "The run's status file cannot be read.")
    return {
        "progress": progress,
        "text": text,
        "eta_s": eta if state == "running" else None,
        "active": state in ("queued", "running"),
        "problem": problem,
        "traceback": status.get("traceback"),
    }


def group_members(metas: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Comparison group -> {run_id: owner who asked for the run in that group}, from each run's
    meta.json. A run belongs to the group it was created in and to every group of its
    ``requesters`` (an identical request reuses a finished or active run instead of training it
    again, see ``samon_core.service.jobs``)."""
    out: dict[str, dict[str, str]] = {}
    for run_id, meta in metas.items():
        group = meta.get("group")
        if group:
            out.setdefault(str(group), {})[run_id] = str(meta.get("owner") or "")
        for req in meta.get("requesters") or []:
            if isinstance(req, Mapping) and req.get("group"):
                who = str(req.get("owner") or "")
                out.setdefault(str(req["group"]), {}).setdefault(run_id, who)
    return out


def group_table(list_df: pd.DataFrame, members: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """One row per comparison group, newest first: group, owner, preset, created, runs, active
    (queued or running), methods, dataset, model and a one-line label. ``list_df`` is
    ``RunStore.list_runs()``, ``members`` from ``group_members``."""
    import pandas as pd

    cols = ["group", "owner", "preset", "created", "runs", "active", "methods", "dataset",
            "model", "label"]
    if list_df is None or list_df.empty or not members:
        return pd.DataFrame(columns=cols)
    by_id = list_df.set_index("run_id")
    rows = []
    for group, runs in members.items():
        ids = [r for r in runs if r in by_id.index]
        if not ids:
            continue
        g = by_id.loc[ids]
        labels = sorted(set(g["method_label"].dropna()), key=lambda s: method_sort_key(s))
        created = g["created"].max()
        when = time.strftime("%b %d %H:%M", time.localtime(created)) if pd.notna(created) else ""
        active = int(g["state"].isin(["queued", "running"]).sum())
        presets = g["preset"].dropna()
        preset = presets.iloc[0] if len(presets) else None
        owners = [o for o in runs.values() if o]
        owner = owners[0] if owners else ""
        datasets = ", ".join(sorted(set(g["dataset"].dropna())))
        models = ", ".join(sorted(set(g["model"].dropna())))
        label = f"{when} · {owner or '?'} · {preset or 'custom'} · {', '.join(labels)}"
        if len(ids) > len(labels):
            label += f" · {len(ids)} runs"
        if active:
            label += f" · {active} active"
        rows.append([group, owner, preset, created, len(ids), active, ", ".join(labels),
                     datasets, models, label])
    out = pd.DataFrame(rows, columns=cols)
    dup = out["label"].duplicated(keep=False)  # select boxes tell options apart by label
    out.loc[dup, "label"] = out.loc[dup, "label"] + " · " + out.loc[dup, "group"].str[-6:]
    return out.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# series helpers
# ---------------------------------------------------------------------------------------------


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Debiased exponential moving average (as TensorBoard's smoothing): ``weight`` in [0, 1)
    (0 = no smoothing). NaNs are carried through without resetting the average."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1); got {weight}")
    out: list[float] = []
    if weight == 0.0:
        return [float(x) for x in values]
    acc, norm = 0.0, 0.0
    for x in values:
        x = float(x)
        if not math.isfinite(x):
            out.append(x)
            continue
        acc = weight * acc + (1 - weight) * x
        norm = weight * norm + (1 - weight)
        out.append(acc / norm)
    return out


def thin(xs: Sequence[Any], ys: Sequence[Any], max_points: int = 2000) -> tuple[list, list]:
    """Every k-th point (and always the last) so that at most ``max_points`` are drawn."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    k = math.ceil(n / max_points)
    idx = list(range(0, n, k))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def seed_group_key(config: Mapping[str, Any]) -> str:
    """Runs that differ only in their seed share this key (the config hash at seed 0)."""
    try:
        cfg = RunConfig.from_dict(config)
    except ValueError:
        return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True)
    return cfg.replace(seed=0).config_hash()


@dataclass
class SeedGroup:
    """Runs that differ only in their seed, charted as one mean +/- std band."""

    key: str
    label: str
    color: str
    method_key: str
    runs: list[RunInfo]


def seed_groups(infos: Sequence[RunInfo]) -> list[SeedGroup]:
    """Group runs by configuration without the seed. Labels are the method label, extended by
    the settings that differ between the groups (model, dataset, epochs, ...) when needed to tell
    them apart. Colours: the method family's colour when each family appears once, else a
    palette."""
    groups: dict[str, SeedGroup] = {}
    for info in infos:
        key = seed_group_key(info.config)
        if key not in groups:
            groups[key] = SeedGroup(key, info.method_label, info.color, info.key, [])
        groups[key].runs.append(info)
    out = list(groups.values())
    by_label: dict[str, list[SeedGroup]] = {}
    for g in out:
        by_label.setdefault(g.label, []).append(g)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        cfgs = [s.runs[0].config for s in same]
        differing = [
            k for k in cfgs[0]
            if k not in ("seed",) and any(c.get(k) != cfgs[0].get(k) for c in cfgs[1:])
        ]
        for g in same:
            c = g.runs[0].config
            detail = ", ".join(f"{k}={c.get(k)}" for k in differing[:3]) or g.key[:6]
            g.label = f"{label} ({detail})"
    out.sort(key=lambda g: (*method_sort_key(g.label, g.method_key),))
    families = [g.method_key for g in out]
    if len(set(families)) != len(families):
        for i, g in enumerate(out):
            g.color = PALETTE[i % len(PALETTE)]
    return out


def mean_std(frames: Sequence[pd.DataFrame], x: str, y: str) -> pd.DataFrame:
    """Mean, std (sample, ddof=1; 0 for one run) and count of ``y`` across ``frames`` at each
    ``x`` value (only x values present in at least one frame). Columns: x, mean, std, n."""
    import pandas as pd

    parts = [f[[x, y]].dropna() for f in frames if f is not None and not f.empty and y in f]
    if not parts:
        return pd.DataFrame({x: [], "mean": [], "std": [], "n": []})
    df = pd.concat(parts, ignore_index=True)
    g = df.groupby(x)[y]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()})
    return out.reset_index().sort_values(x).reset_index(drop=True)


def mean_std_series(
    series: Sequence[tuple[Sequence[float], Sequence[float]]],
) -> tuple[list[float], list[float], list[float], list[int]]:
    """Like ``mean_std`` on (xs, ys) lists: (xs, mean, std (ddof=1; 0 for one value), n) at every
    x present in at least one series, sorted by x."""
    acc: dict[float, list[float]] = {}
    for xs, ys in series:
        for x, y in zip(xs, ys, strict=True):
            acc.setdefault(x, []).append(y)
    xs_out = sorted(acc)
    means, stds, ns = [], [], []
    for x in xs_out:
        vals = acc[x]
        m = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        means.append(m)
        stds.append(sd)
        ns.append(len(vals))
    return xs_out, means, stds, ns


def mean_std_text(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """'84.19 ± 0.20' (sample std; '84.19' for one value); '-' for none."""
    vals = [float(v) * scale for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# results table in the paper's format
# ---------------------------------------------------------------------------------------------


def final_sharpness(data: RunData) -> dict[tuple[int, float], float]:
    """The last sharpness value (highest epoch, then latest record) of each probe kind (steps,
    rho) of a run."""
    best: dict[tuple[int, float], tuple[float, float]] = {}
    for rec in data.records:
        if rec.get("kind") != "sharpness" or not _finite(rec.get("value")):
            continue
        if not (_finite(rec.get("steps")) and _finite(rec.get("rho"))):
            continue
        key = (int(rec["steps"]), float(rec["rho"]))
        epoch = float(rec["epoch"]) if _finite(rec.get("epoch")) else -1.0
        if key not in best or epoch >= best[key][0]:
            best[key] = (epoch, float(rec["value"]))
    return {k: v for k, (_, v) in best.items()}


def final_accuracy(info: RunInfo, data: RunData | None) -> float | None:
    """Final test accuracy (fraction): summary.json, else the last epoch record (None if the run
    has no epoch yet)."""
    if info.summary and isinstance(info.summary.get("final_test_acc"), (int, float)):
        return float(info.summary["final_test_acc"])
    if data is not None:
        _, accs = data.series("epoch", "epoch", "test_acc")
        if accs:
            return accs[-1]
    return None


@dataclass
class ResultsTable:
    """The paper's results table: columns = methods (seed groups), rows = test accuracy and
    sharpness probes. ``cells`` are display strings; ``best`` marks the bold cell of a row
    (highest accuracy, lowest sharpness); ``n`` the runs per column."""

    columns: list[str]
    rows: list[str]
    cells: list[list[str]]
    best: list[list[bool]]
    n: list[int]
    finished_only: bool = True

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.cells, index=self.rows, columns=self.columns)

    def markdown(self) -> str:
        """A Markdown table with the best cell of each row in bold."""

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        head = "| | " + " | ".join(
            f"{esc(c)} (n={n})" for c, n in zip(self.columns, self.n, strict=True)
        ) + " |"
        sep = "|---|" + "---|" * len(self.columns)
        lines = [head, sep]
        for name, cells, best in zip(self.rows, self.cells, self.best, strict=True):
            shown = [f"**{esc(c)}**" if b else esc(c) for c, b in zip(cells, best, strict=True)]
            lines.append(f"| {esc(name)} | " + " | ".join(shown) + " |")
        return "\n".join(lines)


def _sharp_row_name(steps: int, rho: float) -> str:
    return f"l_inf sharpness, {steps} step{'s' if steps != 1 else ''}, rho = {rho:g}"


def results_table(
    groups: Sequence[SeedGroup], data: Mapping[str, RunData], *, finished_only: bool = True
) -> ResultsTable:
    """Final test accuracy (%) as mean ± std over the seeds of each group and the final
    sharpness of each probe (mean ± std), like the poster's table. With ``finished_only`` only
    finished runs count."""
    columns, n_runs = [], []
    acc_cols: list[list[float]] = []
    sharp_cols: list[dict[tuple[int, float], list[float]]] = []
    for g in groups:
        runs = [r for r in g.runs if not finished_only or r.state == "finished"]
        accs, sharp = [], {}
        for r in runs:
            d = data.get(r.run_id)
            acc = final_accuracy(r, d)
            if acc is not None:
                accs.append(acc)
            if d is not None:
                for k, val in final_sharpness(d).items():
                    sharp.setdefault(k, []).append(val)
        columns.append(g.label)
        n_runs.append(len(runs))
        acc_cols.append(accs)
        sharp_cols.append(sharp)
    probe_keys = sorted({k for s in sharp_cols for k in s}, key=lambda k: (-k[0], k[1]))
    rows = ["Test accuracy (%)"] + [_sharp_row_name(*k) for k in probe_keys]
    cells: list[list[str]] = [[mean_std_text(a, 100.0) for a in acc_cols]]
    means: list[list[float | None]] = [[_mean(a) for a in acc_cols]]
    for k in probe_keys:
        cells.append([mean_std_text(s.get(k, []), 1.0, 3) for s in sharp_cols])
        means.append([_mean(s.get(k, [])) for s in sharp_cols])
    best: list[list[bool]] = []
    for i, row in enumerate(means):
        vals = [m for m in row if m is not None]
        if len(vals) < 2:
            best.append([False] * len(row))
            continue
        target = max(vals) if i == 0 else min(vals)
        best.append([m is not None and m == target for m in row])
    return ResultsTable(columns, rows, cells, best, n_runs, finished_only)


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


# ---------------------------------------------------------------------------------------------
# gamma distributions and per-layer means
# ---------------------------------------------------------------------------------------------


@dataclass
class HistogramFrames:
    """Histograms of one parameter (gamma) per run and epoch on common, fixed axes.

    ``density[label][epoch]`` is the fraction of parameters per bin (sums to 1), on ``centers``
    of bins of width ``widths``; ``epochs`` lists every epoch any run has; ``x_range`` and
    ``y_max`` are fixed over all epochs and runs."""

    epochs: list[int]
    centers: dict[str, list[float]]
    density: dict[str, dict[int, list[float]]]
    x_range: tuple[float, float]
    y_max: float
    labels: list[str]


def histogram_frames(stats: Mapping[str, Sequence[Mapping[str, Any]]]) -> HistogramFrames:
    """From ``norm_stats`` records per run label (``RunData.gamma``) to ``HistogramFrames``. The
    x range covers the bins holding any mass (over all epochs and runs) with a small margin."""
    centers: dict[str, list[float]] = {}
    density: dict[str, dict[int, list[float]]] = {}
    epochs: set[int] = set()
    lo, hi, y_max = math.inf, -math.inf, 0.0
    for label, recs in stats.items():
        for rec in recs:
            edges, counts = rec.get("bin_edges"), rec.get("counts")
            if not edges or not counts or len(edges) != len(counts) + 1:
                continue
            total = float(sum(counts))
            if total <= 0:
                continue
            epoch = int(rec.get("epoch", 0))
            c = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
            centers[label] = c
            frac = [n / total for n in counts]
            density.setdefault(label, {})[epoch] = frac
            epochs.add(epoch)
            nz = [i for i, n in enumerate(counts) if n > 0]
            lo = min(lo, edges[nz[0]])
            hi = max(hi, edges[nz[-1] + 1])
            y_max = max(y_max, max(frac))
    if not math.isfinite(lo):
        lo, hi = 0.0, 2.0
    margin = 0.05 * (hi - lo or 1.0)
    return HistogramFrames(
        epochs=sorted(epochs),
        centers=centers,
        density=density,
        x_range=(lo - margin, hi + margin),
        y_max=y_max * 1.08 if y_max > 0 else 1.0,
        labels=[label for label in stats if label in density],
    )


def distribution_summary(recs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per epoch: the exact mean over all parameters (``mean``, None in records written before it
    existed), the mean of the histogram (from bin centres), and the mean of the per-layer means;
    columns epoch, mean, hist_mean, layer_mean."""
    import pandas as pd

    rows = []
    for rec in recs:
        edges, counts = rec.get("bin_edges") or [], rec.get("counts") or []
        total = float(sum(counts))
        if not total or len(edges) != len(counts) + 1:
            continue
        hist_mean = sum(
            n * (edges[i] + edges[i + 1]) / 2 for i, n in enumerate(counts)
        ) / total
        layers = [ly.get("mean") for ly in rec.get("layers") or [] if ly.get("mean") is not None]
        rows.append({
            "epoch": rec.get("epoch"),
            "mean": rec["mean"] if rec.get("mean") is not None else float("nan"),
            "hist_mean": hist_mean,
            "layer_mean": sum(layers) / len(layers) if layers else float("nan"),
        })
    return pd.DataFrame(rows, columns=["epoch", "mean", "hist_mean", "layer_mean"])


def layer_means(recs: Sequence[Mapping[str, Any]], epoch: int | None = None) -> pd.DataFrame:
    """Per-layer mean and std of gamma at ``epoch`` (default: the last one recorded), in network
    order: columns index, name, mean, std, epoch."""
    import pandas as pd

    cols = ["index", "name", "mean", "std", "epoch"]
    if not recs:
        return pd.DataFrame(columns=cols)
    if epoch is None:
        rec = recs[-1]
    else:
        matching = [r for r in recs if r.get("epoch") == epoch]
        if not matching:
            return pd.DataFrame(columns=cols)
        rec = matching[-1]
    rows = [
        [i, ly.get("name", str(i)), ly.get("mean"), ly.get("std"), rec.get("epoch")]
        for i, ly in enumerate(rec.get("layers") or [])
    ]
    return pd.DataFrame(rows, columns=cols)


def speed_summary(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> pd.DataFrame:
    """Median step time (s) and images/s per run from its step records, and the cost relative
    to the SGD run(s) of the set (1.0 = as fast as SGD)."""
    import pandas as pd

    rows = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        _, step_times = d.series("step", "step", "step_time")
        _, ips = d.series("step", "step", "images_per_s")
        if not step_times:
            continue
        rows.append({
            "run": info.label,
            "key": info.key,
            "median step time (ms)": 1000 * statistics.median(step_times),
            "images/s": statistics.median(ips) if ips else float("nan"),
        })
    df = pd.DataFrame(rows, columns=["run", "key", "median step time (ms)", "images/s"])
    base = df.loc[df["key"] == "sgd", "median step time (ms)"]
    df["cost vs SGD"] = df["median step time (ms)"] / float(base.median()) if len(base) else None
    return df.drop(columns=["key"])


# ---------------------------------------------------------------------------------------------
# exports
# ---------------------------------------------------------------------------------------------

EXPORT_KINDS = ("epoch", "step", "sharpness")


def metrics_long(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> pd.DataFrame:
    """All epoch, step and sharpness records of the runs in one long table (one row per record;
    columns run_id, label, method, model, dataset, seed, kind, then the record's fields)."""
    import pandas as pd

    frames = []
    for info in infos:
        d = data.get(info.run_id)
        if d is None:
            continue
        for kind, df in (("epoch", d.epochs), ("step", d.steps), ("sharpness", d.sharpness)):
            if df is None or df.empty:
                continue
            df = df.copy()
            df.insert(0, "kind", kind)
            for i, (col, val) in enumerate((
                ("run_id", info.run_id),
                ("label", info.label),
                ("method", info.method_label),
                ("model", info.config.get("model")),
                ("dataset", info.config.get("dataset")),
                ("seed", info.seed),
            )):
                df.insert(i, col, val)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_id", "label", "method", "model", "dataset", "seed",
                                     "kind"])
    return pd.concat(frames, ignore_index=True, sort=False)


def export_csv(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> str:
    return metrics_long(infos, data).to_csv(index=False)


def export_json(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> str:
    """Configs, meta, status, summaries and all metric records of the runs, as one JSON text."""

    def clean(obj: Any) -> Any:  # NaN / inf are not JSON: write them as null
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    runs = []
    for info in infos:
        d = data.get(info.run_id)
        runs.append({
            "run_id": info.run_id,
            "label": info.label,
            "method": info.method_label,
            "state": info.state,
            "config": info.config,
            "meta": info.meta,
            "summary": info.summary,
            "synthetic_data": info.synthetic,
            "records": d.records if d is not None else [],
        })
    return json.dumps(clean({"exported": time.time(), "runs": runs}), indent=1, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# small helpers for the pages
# ---------------------------------------------------------------------------------------------


def is_active(state: str) -> bool:
    return state in ("queued", "running")


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


PERTURBS = {
    "sgd": "nothing (no SAM)",
    "all": "all parameters",
    "norm": "norm layers' gamma, beta",
    "no-norm": "all but gamma, beta",
    "random": "random mask (SAM-ON's size)",
}


def runs_overview(configs: Mapping[str, RunConfig], seeds: int = 1, kind: str = "cpu",
                  factor: float = 1.0) -> list[dict[str, Any]]:
    """One row per method for the launch summary: run, what SAM perturbs, rho (and where it
    comes from), seeds, model, data, epochs, estimated time per run."""
    rows = []
    for label, cfg in configs.items():
        rho = "-"
        if cfg.method == "sam":
            source = {"paper": "paper", "guess": "our guess", "user": "yours"}[cfg.rho_source()]
            rho = f"{cfg.resolved_rho():g} ({source})"
        data = cfg.dataset + (f", {cfg.train_subset:,} images" if cfg.train_subset else "")
        rows.append({
            "run": label,
            "SAM perturbs": PERTURBS.get(method_key(cfg), cfg.scope),
            "rho": rho,
            "seed" if seeds == 1 else "seeds": ", ".join(str(cfg.seed + i) for i in range(seeds)),
            "model": cfg.model,
            "data": data,
            "epochs": cfg.epochs,
            "time per run": format_duration(factor * estimate_seconds(cfg, kind)),
        })
    return rows


def config_table(configs: Mapping[str, RunConfig]) -> pd.DataFrame:
    """The settings that differ between ``configs`` (rows) per label (columns), plus rho."""
    import pandas as pd

    dicts = {label: cfg.to_dict() for label, cfg in configs.items()}
    for label, cfg in configs.items():
        dicts[label]["rho"] = cfg.resolved_rho() if cfg.method == "sam" else None
    keys = [k for k in next(iter(dicts.values()), {})]
    shown = [k for k in keys if len({json.dumps(d.get(k)) for d in dicts.values()}) > 1]
    def text(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return pd.DataFrame({label: [text(d.get(k)) for k in shown] for label, d in dicts.items()},
                        index=shown)

