"""Finding a claim's runs in the run store and turning them into ``RunResult``s. No torch.

A run belongs to a claim's method at a size when its config equals the claim's config for that
method in everything but the seed (``RunConfig.canonical_dict``: the same identity the store's
reuse uses). Per method and seed one run is used: the newest finished one, else the newest one
still queued, running or interrupted (a partial result); failed, cancelled and diverged runs are
left out. When a seed has several runs of one method (two claims share a config: the blocks
claim trains SAM-ON again beside its B3-only run), the runs of one comparison (``group``) that
covers the most of the claim's methods at that seed are used together: the claims judged from
step times compare only runs trained side by side, and a newer run of another group would break
the pair.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from samon_core.claims.data import Claim, get_claim
from samon_core.claims.results import RunResult, method_name, pair_key
from samon_core.claims.runsets import check_size
from samon_core.claims.verdicts import Verdict
from samon_core.runs.config import RunConfig
from samon_core.runs.states import ACTIVE_STATES, RunState
from samon_core.runs.store import RunStore

# A run that may still finish: queued, training, or interrupted (resumable from its
# checkpoint). A provisional verdict counts such runs, and their seeds are not yet "incomplete".
PARTIAL_STATES: frozenset[RunState] = ACTIVE_STATES | {RunState.INTERRUPTED}


class MissingRuns(ValueError):
    """A claim's runs are not in the store (the CLI reports it in one line, exit code 2)."""


@dataclass(frozen=True)
class StoredRun:
    """The small files of one run: enough to match it to a claim and show its progress."""

    run_id: str
    config: RunConfig
    state: str
    created: float
    group: str = ""
    lockstep: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collected:
    """A claim's runs at one size: the runs used (by method and seed), the methods without any
    run, and the verdict (None while no run has the numbers it needs)."""

    claim: str
    size: str
    runs: dict[tuple[str, int], StoredRun] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    verdict: Verdict | None = None
    epochs_done: dict[tuple[str, int], int] = field(default_factory=dict)


def _identity(config: RunConfig) -> str:
    d = config.canonical_dict()
    d.pop("seed", None)
    return json.dumps(d, sort_keys=True)


def index_runs(store: RunStore) -> list[StoredRun]:
    """Every readable run of the store (config, state, created, group, lockstep)."""
    out = []
    statuses = store.read_statuses()  # one read of the database, not one per run
    for run_id in store.run_ids():
        status = statuses.get(run_id)
        try:
            config = store.read_config(run_id)
            meta = store.read_meta(run_id)
            if status is None:  # a files-era folder not adopted yet (or no run at all)
                status = store.read_status(run_id)
            summary = store.read_summary(run_id) or {}
        except (OSError, ValueError):
            continue
        created = meta.get("created")
        out.append(StoredRun(run_id, config, str(status.get("state")),
                             float(created) if isinstance(created, (int, float)) else 0.0,
                             str(meta.get("group") or ""),
                             tuple(str(x) for x in summary.get("lockstep") or ())))
    return out


def _rank(run: StoredRun) -> tuple[int, float, str]:
    return (run.state == RunState.FINISHED, run.created, run.run_id)


def match(index: Sequence[StoredRun], claim: Claim, size: str,
          seeds: int | None = None) -> dict[tuple[str, int], StoredRun]:
    """(method, seed) -> the run used (module doc); ``seeds``: only seeds ``0 .. seeds-1``."""
    targets = {_identity(cfg): m for m, cfg in claim.method_configs(check_size(size)).items()}
    candidates: dict[tuple[str, int], list[StoredRun]] = {}
    for run in index:
        if run.state != RunState.FINISHED and run.state not in PARTIAL_STATES:
            continue
        if seeds is not None and run.config.seed >= seeds:
            continue
        method = targets.get(_identity(run.config))
        if method is not None:
            candidates.setdefault((method, run.config.seed), []).append(run)
    chosen = {key: max(runs, key=_rank) for key, runs in candidates.items()}
    for seed in {seed for _, seed in candidates}:
        group = _widest_group([runs for (_, s), runs in candidates.items() if s == seed])
        for (method, s), runs in candidates.items():
            together = [r for r in runs if group and r.group == group]
            if s == seed and together:
                chosen[(method, s)] = max(together, key=_rank)
    return dict(sorted(chosen.items(), key=lambda kv: (claim.methods.index(kv[0][0]), kv[0][1])))


def _widest_group(per_method: Sequence[Sequence[StoredRun]]) -> str:
    """The comparison (group name) with runs of the most methods of one seed ('' if none has
    runs of two): ties go to the group of the newest finished run."""
    best: tuple[int, tuple[int, float, str]] | None = None
    name = ""
    groups = {r.group for runs in per_method for r in runs if r.group}
    for group in sorted(groups):
        members = [max((r for r in runs if r.group == group), key=_rank, default=None)
                   for runs in per_method]
        present = [r for r in members if r is not None]
        score = (len(present), max(_rank(r) for r in present))
        if len(present) >= 2 and (best is None or score > best):
            best, name = score, group
    return name


def results_of(store: RunStore, runs: dict[tuple[str, int], StoredRun]) -> list[RunResult]:
    """The runs with their metric records (resume markers applied)."""
    out = []
    for (method, seed), run in runs.items():
        try:
            records = tuple(store.read_records(run.run_id))
        except (OSError, ValueError):
            records = ()
        out.append(RunResult(run.run_id, method, seed, run.state, records, run.lockstep,
                             run.group, run.config.epochs, pair_key(run.config.to_dict())))
    return out


def collect(store: RunStore, claim_id: str, size: str = "cpu", seeds: int | None = None, *,
            index: Sequence[StoredRun] | None = None) -> Collected:
    """The claim's runs at ``size`` and their verdict (None when no method has a run yet)."""
    claim = get_claim(claim_id)
    runs = match(index_runs(store) if index is None else index, claim, size, seeds)
    have = {m for m, _ in runs}
    missing = tuple(method_name(m) for m in claim.methods if m not in have)
    results = results_of(store, runs)
    verdict = claim.verdict(results, size) if runs else None
    done = {(r.method, r.seed): r.epochs_done for r in results}
    return Collected(claim.id, size, runs, missing, verdict, done)


def require_runs(collected: Collected, runs_dir: Any) -> Verdict:
    """The verdict, or ``MissingRuns`` in one line naming what to run."""
    if collected.missing or collected.verdict is None:
        what = ", ".join(collected.missing) or "all methods"
        raise MissingRuns(
            f"claim {collected.claim!r} at size {collected.size}: no runs of {what} in "
            f"{runs_dir}; train them with `python -m samon_core claim run {collected.claim} "
            f"--size {collected.size}`"
        )
    return collected.verdict
