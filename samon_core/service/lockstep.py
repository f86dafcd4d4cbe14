"""Which queued runs a worker trains together with the one it took: the lockstep group.

The runs of one comparison (``meta.json``'s ``group``, set by ``submit_group``) share a device
and are trained interleaved step by step (``samon_core.train.lockstep.train_group``), so that
their curves grow together and their step times are measured under the same load. A worker that
takes one run of a group claims the group's other *queued* runs on the same device setting, up to
``settings.lockstep_max_runs`` in all (1 turns lockstep off), each with its own claim lock: a
run held by another worker, cancelled, or no longer queued stays out. The huey messages of the
runs taken this way are skipped later (they are no longer queued), so nothing trains twice.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore
from samon_core.service.claims import CANCEL_FILE, claim_lock
from samon_core.service.settings import Settings


def group_candidates(store: RunStore, run_id: str, limit: int) -> list[str]:
    """Up to ``limit`` other queued runs of ``run_id``'s comparison with its device setting,
    oldest first. Reads only meta, status and config files; a damaged one is skipped."""
    if limit <= 0:
        return []
    try:
        group = store.read_meta(run_id).get("group")
        device = store.read_config_dict(run_id).get("device")
    except (OSError, ValueError):
        return []
    if not group:
        return []
    found: list[tuple[float, str]] = []
    for other in store.run_ids():
        if other == run_id:
            continue
        try:
            meta = store.read_meta(other)
            if meta.get("group") != group:
                continue
            if store.read_status(other).get("state") != RunState.QUEUED:
                continue
            if store.read_config_dict(other).get("device") != device:
                continue
        except (OSError, ValueError):
            continue
        found.append((float(meta.get("created") or 0.0), other))
    return [rid for _, rid in sorted(found)[:limit]]


def claim_group_mates(store: RunStore, run_id: str, settings: Settings,
                      held: contextlib.ExitStack) -> list[str]:
    """Claim ``run_id``'s group mates (module doc); their claim locks stay in ``held``."""
    mates = []
    for other in group_candidates(store, run_id, settings.lockstep_max_runs - 1):
        run_dir: Path = store.run_dir(other)
        if not held.enter_context(claim_lock(run_dir)):
            continue  # another worker has it
        # Re-read under the claim: it may have been cancelled or taken meanwhile.
        if store.read_status(other).get("state") != RunState.QUEUED:
            continue
        if (run_dir / CANCEL_FILE).exists():
            continue
        mates.append(other)
    return mates
