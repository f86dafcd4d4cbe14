"""Cost per step, told truthfully: ratios only between runs that trained interleaved.

Runs of a comparison train in lockstep (``samon_core.train.lockstep``): one worker steps them in
turn on one device, so their step times are measured under the same machine load and their ratio
is evidence. Runs trained at different times were measured under different loads (other users'
runs, the machine's other work): their ratio says nothing about the methods, so none is shown.

Who trained with whom: a run's ``summary.json`` names its lockstep group (``lockstep``: run ids);
a run still training has no summary yet, but its status (the database's row) names its
``worker``, and a worker trains one group at a time, so running runs of one worker are interleaved.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from samon_app.reader import RunData, RunInfo
from samon_core.catalog.methods import BY_KEY, BY_NAME
from samon_core.runs.estimate import STEP_COST_LABEL
from samon_core.runs.states import RunState

NOT_INTERLEAVED = (
    "these runs trained at different times, so their step times were measured under different "
    "machine load: no ratio is shown"
)
# (numerator, denominator): the cost ratios shown, by method family (``MethodSpec.key``).
PAIRS = (("all", "base"), ("norm", "base"), ("norm", "all"))


def ratio_name(num: str, den: str) -> str:
    """'SAM-all / SGD': a ratio of two method families, by their names."""
    return f"{BY_KEY[num].name} / {BY_KEY[den].name}"


def expected_ratio(num: str, den: str) -> float:
    """The FLOP-based expectation of the families named ``num`` over ``den`` ('SAM-ON', 'SGD':
    the names the page shows; forward-pass units, ``MethodSpec.step_cost_f``: the lab's
    estimate, not the paper's)."""
    return BY_NAME[num].step_cost_f / BY_NAME[den].step_cost_f


def expected_help() -> str:
    """The help of the 'expected (FLOPs)' column: where its numbers come from."""
    f = {k: BY_KEY[k].step_cost_f for k in ("base", "all", "norm")}
    return (f"{STEP_COST_LABEL[0].upper()}{STEP_COST_LABEL[1:]} (not the paper's), in "
            f"forward-pass units per step: {BY_KEY['base'].name} {f['base']:g}F, "
            f"{BY_KEY['all'].name} {f['all']:g}F, {BY_KEY['norm'].name} about {f['norm']:g}F "
            "(its first pass needs no weight gradients of the conv and linear layers).")


def _union(parent: dict[str, str], a: str, b: str) -> None:
    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    parent[find(a)] = find(b)


def lockstep_sets(infos: Sequence[RunInfo]) -> list[list[str]]:
    """The shown runs split into sets trained interleaved (module doc); a run trained alone is
    a set of one. Sets in the order of ``infos``."""
    ids = [i.run_id for i in infos]
    parent = {r: r for r in ids}
    by_worker: dict[str, str] = {}
    for info in infos:
        mates = (info.summary or {}).get("lockstep")
        if isinstance(mates, list):
            for m in mates:
                if str(m) in parent:
                    _union(parent, info.run_id, str(m))
        worker = info.status.get("worker")
        if info.state == RunState.RUNNING and isinstance(worker, str) and worker:
            if worker in by_worker:
                _union(parent, info.run_id, by_worker[worker])
            else:
                by_worker[worker] = info.run_id
    sets: dict[str, list[str]] = {}
    for r in ids:
        root = r
        while parent[root] != root:
            root = parent[root]
        sets.setdefault(root, []).append(r)
    return list(sets.values())


def step_times(data: RunData | None) -> list[float]:
    """The run's seconds per step, one per step record."""
    return data.series("step", "step", "step_time")[1] if data is not None else []


def median_load(data: RunData | None) -> float | None:
    """The median 1-minute load average over the run's step records (None if not recorded)."""
    loads = data.series("step", "step", "load")[1] if data is not None else []
    return statistics.median(loads) if loads else None


@dataclass
class CostRatios:
    """The measured cost ratios of a comparison, beside the expected ones. ``rows``: ratio,
    measured, expected, runs (which runs, trained together). ``note``: why a ratio is missing
    ('' when every possible ratio is shown)."""

    rows: list[dict[str, object]] = field(default_factory=list)
    note: str = ""


def _set_medians(ids: Sequence[str], infos: Mapping[str, RunInfo],
                 data: Mapping[str, RunData]) -> dict[str, float]:
    """Per method family in one lockstep set: the median step time over its runs' records."""
    pooled: dict[str, list[float]] = {}
    for r in ids:
        times = step_times(data.get(r))
        if times:
            pooled.setdefault(infos[r].key, []).extend(times)
    return {key: statistics.median(v) for key, v in pooled.items()}


def cost_ratios(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> CostRatios:
    """SAM-all/SGD, SAM-ON/SGD, SAM-ON/SAM-all from the median step times of runs trained
    interleaved (one row per lockstep set holding both methods), with the FLOP expectation."""
    by_id = {i.run_id: i for i in infos}
    sets = lockstep_sets(infos)
    out = CostRatios()
    for n, ids in enumerate(sets, start=1):
        if len(ids) < 2:
            continue
        med = _set_medians(ids, by_id, data)
        names = ", ".join(by_id[r].label for r in ids)
        for num, den in PAIRS:
            if num in med and den in med and med[den] > 0:
                out.rows.append({
                    "ratio": ratio_name(num, den),
                    "measured": med[num] / med[den],
                    "expected (FLOPs)": BY_KEY[num].step_cost_f / BY_KEY[den].step_cost_f,
                    "trained together": names if len(sets) == 1 else f"set {n}: {names}",
                })
    present = {i.key for i in infos if step_times(data.get(i.run_id))}
    possible = [p for p in PAIRS if p[0] in present and p[1] in present]
    shown = {r["ratio"] for r in out.rows}  # names: ratio_name of a pair
    if possible and len(shown) < len(possible):
        out.note = NOT_INTERLEAVED[0].upper() + NOT_INTERLEAVED[1:] + (
            " for the other pairs." if shown else ".")
    return out


def interleaved_with(infos: Sequence[RunInfo]) -> dict[str, str]:
    """Per run id: 'not interleaved' or 'with N other runs' (interleaved), for the speed table."""
    out = {}
    for ids in lockstep_sets(infos):
        for r in ids:
            k = len(ids) - 1
            out[r] = "not interleaved" if not k else f"with {k} other run{'s' if k > 1 else ''}"
    return out
