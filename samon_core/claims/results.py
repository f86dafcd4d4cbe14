"""What a verdict reads from a run: its method, seed, state and metric records (the shapes of
``samon_core.records``), and the numbers taken from them. Pure functions, no torch.

A run still training counts with its latest records (a partial result: the verdict is then
provisional); a run without the record a claim needs yet contributes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from samon_core.catalog import methods
from samon_core.runs.states import RunState


@dataclass(frozen=True)
class RunResult:
    """One run as a verdict sees it. ``method`` is the family key (``base``, ``all``, ``norm``,
    ``no-norm``, ``random``); ``lockstep`` the run ids its summary says trained together with
    it (empty while it trains or when it trained alone); ``group`` its comparison group."""

    run_id: str
    method: str
    seed: int
    state: str
    records: tuple[Mapping[str, Any], ...] = ()
    lockstep: tuple[str, ...] = ()
    group: str = ""
    epochs: int = 0  # the run's planned epochs (0 = unknown)
    # what the run shares with the other methods' runs of its seed (seed, data draw, data, model,
    # schedule: ``pair_key``); equal keys = paired by seed. "" = unknown (its group decides).
    pair_key: str = ""

    @property
    def finished(self) -> bool:
        return self.state == RunState.FINISHED

    @property
    def epochs_done(self) -> int:
        done = [int(r.get("epoch") or 0) for r in self.records if r.get("kind") == "epoch"]
        return max(done, default=0)


def method_name(key: str) -> str:
    """The display name of a claim's method key: 'SAM-ON' for 'norm'; with a variant or setting
    (``runsets.split_key``) 'SAM-ON (ASAM elementwise)' for 'norm@asam', 'AdamW' for
    'base@vit-adamw', 'SAM-all (Lion)' for 'all@vit-lion'."""
    from samon_core.claims.runsets import SETTING_NAMES, VARIANT_NAMES  # data; no cycle

    family, _, tag = key.partition("@")
    spec = methods.BY_KEY.get(family)
    if spec is None or (tag and tag not in SETTING_NAMES and tag not in VARIANT_NAMES):
        return key
    if not tag:
        return spec.name
    if tag in SETTING_NAMES:
        return SETTING_NAMES[tag] if family == "base" else f"{spec.name} ({SETTING_NAMES[tag]})"
    return f"{spec.name} ({VARIANT_NAMES[tag]})"


def _latest(records: Sequence[Mapping[str, Any]], kind: str,
            keep: Callable[[Mapping[str, Any]], bool] = lambda r: True) -> Mapping[str, Any] | None:
    picked = [r for r in records if r.get("kind") == kind and keep(r)]
    return max(picked, key=lambda r: (r.get("epoch") or 0, r.get("step") or 0), default=None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def final_test_acc(records: Sequence[Mapping[str, Any]]) -> float | None:
    """Test accuracy in percent at the latest epoch record (None before the first epoch)."""
    rec = _latest(records, "epoch")
    acc = _number(rec.get("test_acc")) if rec else None
    return None if acc is None else 100.0 * acc


def test_acc_at(records: Sequence[Mapping[str, Any]], epoch: int) -> float | None:
    """Test accuracy in percent at the end of ``epoch`` (None when the run is not there yet)."""
    rec = _latest(records, "epoch", lambda r: r.get("epoch") == epoch)
    acc = _number(rec.get("test_acc")) if rec else None
    return None if acc is None else 100.0 * acc


def common_epoch(results: Sequence[RunResult], keys: Sequence[str]) -> int | None:
    """The latest epoch every started run of ``keys`` has reached (runs still training are
    compared there, not at their different latest epochs); None while none has an epoch."""
    done = [r.epochs_done for r in results if r.method in keys and r.epochs_done > 0]
    return min(done) if done else None


def final_sharpness(records: Sequence[Mapping[str, Any]], steps: int = 1) -> float | None:
    """The latest ``sharpness`` value of the ``steps``-step probe (the paper's 1-step probe at
    rho 0.01 by default), None before the first probe."""
    rec = _latest(records, "sharpness", lambda r: r.get("steps") == steps)
    return _number(rec.get("value")) if rec else None


def _robustness(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The last ``robustness`` record in file order (``robustness RUN`` appends a newer one with
    the same epoch and step)."""
    return next((r for r in reversed(records) if r.get("kind") == "robustness"), None)


def robust_acc(records: Sequence[Mapping[str, Any]], norm: str, eps: float) -> float | None:
    """Accuracy in percent under the PGD attack ``norm`` / ``eps`` (pixel units) of the latest
    ``robustness`` record (None without one, or without that attack)."""
    rec = _robustness(records)
    for attack in (rec or {}).get("attacks") or ():
        if isinstance(attack, Mapping) and attack.get("norm") == norm and \
                isinstance(e := _number(attack.get("eps")), float) and abs(e - eps) < 1e-9:
            acc = _number(attack.get("acc"))
            return None if acc is None else 100.0 * acc
    return None


def corruption_acc(records: Sequence[Mapping[str, Any]]) -> float | None:
    """Mean accuracy in percent over every corruption and severity of the latest ``robustness``
    record (CIFAR-10-C's summary figure; None without one)."""
    rec = _robustness(records)
    accs = [a for c in (rec or {}).get("corruptions") or ()
            if isinstance(c, Mapping) and (a := _number(c.get("acc"))) is not None]
    return 100.0 * sum(accs) / len(accs) if accs else None


# The config fields a method's runs share with the other methods' runs of the same seed when the
# comparison is paired: the same initialisation, batch order and data draw.
PAIR_FIELDS: tuple[str, ...] = ("seed", "data_seed", "dataset", "train_subset", "test_subset",
                                "label_noise", "model", "norm_layer", "epochs", "batch_size",
                                "augment")


def pair_key(config: Mapping[str, Any]) -> str:
    """The run's share of randomness with the other methods' runs (``PAIR_FIELDS``)."""
    return "|".join(f"{k}={config.get(k)!r}" for k in PAIR_FIELDS)


def gamma_means(records: Sequence[Mapping[str, Any]],
                param: str = "gamma") -> tuple[float, float] | None:
    """(mean of all gammas (``param``: or betas) at initialisation (epoch 0), at the latest
    epoch), None without both."""
    stats = [r for r in records if r.get("kind") == "norm_stats" and r.get("param") == param]
    first = next((r for r in stats if r.get("epoch") == 0), None)
    last = _latest(stats, "norm_stats")
    if first is None or last is None or last is first or not last.get("epoch"):
        return None
    start, end = _number(first.get("mean")), _number(last.get("mean"))
    return None if start is None or end is None else (start, end)


def gamma_shift(records: Sequence[Mapping[str, Any]], epoch: int | None = None,
                param: str = "gamma") -> float | None:
    """How far the mean gamma (``param``: or beta) moved from initialisation to ``epoch``
    (default: the latest), None without both."""
    if epoch is not None:
        records = [r for r in records if r.get("kind") != "norm_stats"
                   or (r.get("epoch") or 0) <= epoch]
    means = gamma_means(records, param)
    return None if means is None else means[1] - means[0]


def step_windows(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, float, int]]:
    """(global step at the window's end, mean step time (s), steps in the window) of every step
    record, in step order; a window's steps are the steps since the previous record's."""
    rows = sorted((int(r.get("step") or 0), t) for r in records if r.get("kind") == "step"
                  and (t := _number(r.get("step_time"))) is not None and t > 0)
    out, last = [], 0
    for step, t in rows:
        if step > last:
            out.append((step, t, step - last))
            last = step
    return out


@dataclass(frozen=True)
class Values:
    """A method's values over its seeds, and which of them come from runs still training."""

    method: str
    by_seed: dict[int, float] = field(default_factory=dict)
    partial_seeds: tuple[int, ...] = ()
    keys: dict[int, str] = field(default_factory=dict)  # seed -> what pairs it (``pair_key``)


def values_of(results: Sequence[RunResult], method: str,
              extract: Callable[[Sequence[Mapping[str, Any]]], float | None]) -> Values:
    """``extract(records)`` of every run of ``method`` that has it, by seed."""
    by_seed: dict[int, float] = {}
    keys: dict[int, str] = {}
    partial: list[int] = []
    for r in results:
        if r.method != method:
            continue
        value = extract(r.records)
        if value is None:
            continue
        by_seed[r.seed] = value
        keys[r.seed] = r.pair_key or (f"group={r.group}|seed={r.seed}" if r.group else "")
        if not r.finished:
            partial.append(r.seed)
    return Values(method, by_seed, tuple(sorted(partial)), keys)
