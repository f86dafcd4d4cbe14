"""Which runs a claim uses when a seed has several runs of one method (``collect.match``): the
runs of the comparison that covers the most of the claim's methods, so that the claims judged
from step times keep the runs that trained side by side (the blocks claim trains SAM-ON again
beside its B3-only run, with the same config as the cost claim's SAM-ON)."""

from __future__ import annotations

from samon_core.claims import get_claim
from samon_core.claims.collect import StoredRun, match


def _runs(claim_id: str, seed: int, group: str, created: float, methods=None) -> list[StoredRun]:
    configs = get_claim(claim_id).method_configs("cpu")
    return [StoredRun(f"{group}-{m}-{seed}", cfg.replace(seed=seed), "finished", created, group)
            for m, cfg in configs.items() if methods is None or m in methods]


def test_a_newer_run_of_another_comparison_does_not_break_the_lockstep_trio():
    trio = _runs("cost", 0, "claim-cost-cpu-seed0", created=1.0)
    blocks = _runs("blocks", 0, "claim-blocks-cpu-seed0", created=2.0)  # SAM-ON again, newer
    chosen = match(trio + blocks, get_claim("cost"), "cpu")
    assert {r.group for r in chosen.values()} == {"claim-cost-cpu-seed0"}
    chosen = match(trio + blocks, get_claim("blocks"), "cpu")
    assert {r.group for r in chosen.values()} == {"claim-blocks-cpu-seed0"}


def test_without_a_shared_comparison_the_newest_finished_run_is_used():
    old = _runs("cost", 0, "", created=1.0)
    new = _runs("cost", 0, "", created=2.0, methods={"norm"})
    chosen = match(old + new, get_claim("cost"), "cpu")
    assert chosen[("norm", 0)].created == 2.0 and chosen[("all", 0)].created == 1.0
