"""Fake runs in a run store, as the trainer leaves them, without training: their metric records
are built from the trainer's types (``support.records``), their rows and folders by the store.

``fake_run`` is a run for the pages (step, epoch, sharpness and gamma/beta records);
``fake_claim_runs`` a claim's runs with chosen accuracies; ``robust_three`` one seed of SGD,
SAM-all and SAM-ON, each with a robustness record.
"""

from __future__ import annotations

from samon_core import claims
from samon_core.records import (
    EpochRecord,
    LayerStats,
    NormStatsRecord,
    SharpnessRecord,
    StepRecord,
)
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from support.configs import TINY, tiny_config
from support.records import record, records, robust_record

# ---------------------------------------------------------------------------------------------
# a run for the pages
# ---------------------------------------------------------------------------------------------

EDGES = [round(-0.5 + 0.05 * i, 4) for i in range(61)]
# The page fake's records are an older trainer's: epoch records without the plain CE and the
# SAM flag, gamma statistics without below/above and the exact mean/std (the pages then read
# the layers' means); readers must still show those.
_OLDER_EPOCH = ("train_ce", "test_ce", "sam")
_OLDER_NORM = ("below", "above", "mean", "std")


def hist(center: float, n: int = 336) -> list[int]:
    """Counts on ``EDGES`` of ``n`` values spread around ``center``."""
    counts = [0] * 60
    for i in range(n):
        x = center + 0.3 * ((i % 13) - 6) / 6
        b = min(59, max(0, int((x - EDGES[0]) / 0.05)))
        counts[b] += 1
    return counts


def _norm_stats(epoch: int, step: int, param: str, center: float, means: list[float],
                std: float) -> dict:
    layers = [record(LayerStats, name=f"norm{i}", mean=m, std=std) for i, m in enumerate(means)]
    return record(NormStatsRecord, without=_OLDER_NORM, epoch=epoch, step=step, time=step * 0.1,
                  param=param, bin_edges=EDGES, counts=hist(center), layers=layers)


def fake_run(store: RunStore, config: RunConfig, *, owner="alice", group="g1", state="finished",
             epochs_done: int | None = None, acc: float = 0.5, message: str = "",
             preset: str | None = None, summary_extra: dict | None = None,
             load: float | None = None) -> str:
    """A run with step, epoch, sharpness and gamma/beta records like the trainer's
    (``summary_extra`` merged into a finished run's summary; ``load`` in its step records)."""
    rid = store.create_run(config, {"owner": owner, "group": group, "preset": preset})
    done = config.epochs if epochs_done is None else epochs_done
    shift = {"norm": 0.08, "all": 0.02}.get(config.scope if config.method == "sam" else "", 0.0)
    with store.metrics_writer(rid) as w:
        for param, center in (("gamma", 1.0), ("beta", 0.0)):
            w.write(_norm_stats(0, 0, param, center, [center] * 5, 0.0))
        step = 0
        for e in range(1, done + 1):
            for _ in range(3):
                step += 4
                w.write(record(StepRecord, epoch=e, step=step, time=step * 0.1,
                               loss=4.0 - 0.2 * e, acc=acc * e / done, lr=0.1,
                               step_time=0.05 * (2 if config.method == "sam" else 1),
                               images_per_s=1200.0, load=load))
            gamma = 1.0 + shift * e
            w.write(_norm_stats(e, step, "gamma", gamma, [gamma + 0.01 * i for i in range(5)],
                                0.1))
            w.write(record(EpochRecord, without=_OLDER_EPOCH, epoch=e, step=step,
                           time=step * 0.1, train_loss=4.0 - 0.2 * e, train_acc=acc * e / done,
                           test_loss=4.1 - 0.2 * e, test_acc=acc * e / done * 0.9,
                           epoch_time=1.0, eta_s=float(config.epochs - e)))
        if state == "finished":
            w.write(record(SharpnessRecord, epoch=done, step=step, time=step * 0.1, steps=1,
                           rho=0.01, value=0.2 + shift, m=32, n=64))
    fields = {"epoch": done, "progress": done / config.epochs, "test_acc": acc * 0.9}
    if message:
        fields["message"] = message
    if state == "running":
        fields["eta_s"] = 12.0
    store.write_status(rid, state, **fields)
    if state == "finished":
        store.write_summary(rid, {"state": "finished", "final_test_acc": acc * 0.9,
                                  "best_test_acc": acc * 0.9, "epochs_done": done,
                                  **(summary_extra or {})})
    return rid


def three_methods(base: RunConfig = TINY) -> dict[str, RunConfig]:
    return {
        "SGD": base.replace(method="base"),
        "SAM-all": base.replace(method="sam", scope="all"),
        "SAM-ON": base.replace(method="sam", scope="norm"),
    }


def add_record(store: RunStore, rid: str, rec: dict) -> None:
    """Append one metric record to run ``rid``."""
    with store.metrics_writer(rid) as w:
        w.write(rec)


# (clean, drop per budget) of each method's robustness record: SAM keeps far more under attack
ROBUST_LEVELS = {"base": (0.60, 0.20), "all": (0.64, 0.04), "norm": (0.63, 0.05)}


def robust_three(runs: RunStore, group: str, robustness: str = "standard") -> dict[str, str]:
    """SGD, SAM-all and SAM-ON of one seed, each with its robustness record."""
    cfg = tiny_config(robustness=robustness)
    ids = {"base": fake_run(runs, cfg.replace(method="base"), group=group),
           "all": fake_run(runs, cfg.replace(scope="all"), group=group),
           "norm": fake_run(runs, cfg, group=group)}
    for key, rid in ids.items():
        add_record(runs, rid, robust_record(*ROBUST_LEVELS[key]))
    return ids


# ---------------------------------------------------------------------------------------------
# a claim's runs
# ---------------------------------------------------------------------------------------------


def write_fake_run(store: RunStore, config: RunConfig, acc: float, *, state: str = "finished",
                   group: str = "g", lockstep: list[str] | None = None, epochs_done=None,
                   **opts) -> str:
    """A run folder with records like the trainer's (``records``) and, when finished, a
    summary (with ``lockstep`` when given)."""
    rid = store.create_run(config, {"owner": "alice", "group": group})
    done = config.epochs if epochs_done is None else epochs_done
    recs = records(acc, epochs=done, **opts)
    with store.metrics_writer(rid) as w:
        for rec in recs:
            w.write(rec)
    store.write_status(rid, state, epoch=done)
    if state == "finished":
        summary = {"state": "finished", "final_test_acc": acc / 100, "epochs_done": done}
        if lockstep is not None:
            summary["lockstep"] = lockstep
        store.write_summary(rid, summary)
    return rid


def fake_claim_runs(store: RunStore, claim_id: str, accs: dict[str, list[float]],
                    size: str = "cpu", **kw) -> list[str]:
    """Fake runs of a claim's configs: method key -> final accuracy per seed."""
    claim = claims.get_claim(claim_id)
    ids = []
    for key, cfg in zip(claim.methods, claim.runs(size).values(), strict=True):
        for seed, acc in enumerate(accs[key]):
            ids.append(write_fake_run(store, cfg.replace(seed=seed), acc, **kw))
    return ids
