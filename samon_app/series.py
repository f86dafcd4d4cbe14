"""Curves for the charts: smoothing, thinning, seed groups and mean ± std across seeds.

Runs that differ only in their seed form a ``SeedGroup``, charted as one mean line with a
+/- one-std band (``mean_std_series``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from samon_app.reader import RunInfo
from samon_core.catalog.methods import method_sort_key
from samon_core.runs.config import RunConfig


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


DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SHORT_DETAIL = 24  # characters of the differing settings a legend name may carry


@dataclass
class SeedGroup:
    """Runs that differ only in their seed, charted as one mean +/- std band.

    ``name`` is the method label ("SAM-ON"); ``label`` the name unique among the shown groups
    (the method label, plus the first differing setting when one method appears with several
    settings); ``details`` all the settings that differ between groups of the method (hover,
    tooltip). ``color`` is the method's colour; ``dash`` tells groups of one method apart."""

    key: str
    label: str
    color: str
    method_key: str
    runs: list[RunInfo]
    name: str = ""
    details: str = ""
    dash: str = "solid"


def _differing(cfgs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [k for k in cfgs[0]
            if k != "seed" and any(c.get(k) != cfgs[0].get(k) for c in cfgs[1:])]


def _shorten(text: str, n: int = SHORT_DETAIL) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def seed_groups(infos: Sequence[RunInfo]) -> list[SeedGroup]:
    """Group runs by configuration without the seed. Every group has its method's colour (one
    definition for all pages); groups of the same method label that differ in other settings
    get a dash each, their differing settings as ``details`` and the first of them in the label
    (shortened), so that legends stay short."""
    groups: dict[str, SeedGroup] = {}
    for info in infos:
        key = seed_group_key(info.config)
        if key not in groups:
            groups[key] = SeedGroup(key, info.method_label, info.color, info.key, [],
                                    name=info.method_label)
        groups[key].runs.append(info)
    out = list(groups.values())
    by_label: dict[str, list[SeedGroup]] = {}
    for g in out:
        by_label.setdefault(g.label, []).append(g)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        differing = _differing([s.runs[0].config for s in same])
        for i, g in enumerate(same):
            c = g.runs[0].config
            parts = [f"{k}={c.get(k)}" for k in differing]
            g.details = ", ".join(parts)
            g.label = f"{label} · {_shorten(parts[0]) if parts else g.key[:6]}"
            g.dash = DASHES[i % len(DASHES)]
    out.sort(key=lambda g: (*method_sort_key(g.label, g.method_key),))
    seen: dict[str, int] = {}
    for g in out:  # labels unique even when the shortened settings coincide
        seen[g.label] = seen.get(g.label, 0) + 1
        if seen[g.label] > 1:
            g.label = f"{g.label} #{seen[g.label]}"
    return out


def mean_std_series(
    series: Sequence[tuple[Sequence[float], Sequence[float]]],
) -> tuple[list[float], list[float], list[float], list[int]]:
    """Mean across series at each x: (xs, mean, std (sample, ddof=1; 0 for one value), n) at
    every x present in at least one of the (xs, ys) series, sorted by x."""
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
