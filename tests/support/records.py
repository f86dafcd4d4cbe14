"""Metric records for test fakes, built from the trainer's types (``samon_core/records.py``).

``record(EpochRecord, epoch=1, ...)`` checks its fields against the type when it is called: a
field the type does not have, or one of its fields left out, raises ``TypeError``. So a renamed
record field breaks every fake at construction instead of leaving it to write a shape the
trainer no longer writes. A fake that leaves fields out on purpose (an older trainer's record,
or a minimal one that readers must cope with) names them in ``without=``; they are checked to
be fields of the type too.

Records that are *meant* to be damaged (the hostile tests) stay raw dicts in their tests.
"""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

from samon_core.catalog import robustness as suite
from samon_core.records import (
    AttackResult,
    CorruptionResult,
    EpochRecord,
    NormStatsRecord,
    RobustnessRecord,
    SharpnessRecord,
    StepRecord,
)

# A step's and an epoch record's numbers: a stand-in trainer that only marks where steps and
# epochs end leaves them out.
STEP_METRICS = ("loss", "acc", "lr", "step_time", "images_per_s", "load")
EPOCH_METRICS = ("train_loss", "train_ce", "train_acc", "test_loss", "test_ce", "test_acc",
                 "epoch_time", "eta_s", "sam")


def record(kind: type, /, *, without: tuple[str, ...] = (), **fields: Any) -> dict:
    """A record of the TypedDict ``kind`` with exactly its fields (``kind`` filled in from the
    type; ``without``: the fields this fake leaves out)."""
    hints = get_type_hints(kind)
    kinds = get_args(hints["kind"]) if "kind" in hints else ()
    if kinds and "kind" not in fields:
        fields = {"kind": kinds[0], **fields}  # first, as the trainer writes it
    unknown = sorted((set(fields) | set(without)) - set(hints))
    missing = sorted(set(hints) - set(fields) - set(without))
    if unknown or missing:
        raise TypeError(f"{kind.__name__}: unknown fields {unknown}, missing fields {missing}")
    if kinds and fields["kind"] not in kinds:
        raise TypeError(f"{kind.__name__}: kind {fields['kind']!r}, not one of {kinds}")
    return dict(kind(**fields))


# ---------------------------------------------------------------------------------------------
# a claim's run: records like the trainer's, numbers chosen by the test
# ---------------------------------------------------------------------------------------------


def epoch_record(epoch: int, test_acc_pct: float) -> dict:
    return record(EpochRecord, epoch=epoch, step=10 * epoch, time=float(epoch), train_loss=2.0,
                  train_ce=2.0, train_acc=0.5, test_loss=2.1, test_ce=2.1,
                  test_acc=test_acc_pct / 100, epoch_time=1.0, eta_s=0.0, sam=True)


def norm_record(epoch: int, mean: float, param: str = "gamma") -> dict:
    return record(NormStatsRecord, epoch=epoch, step=10 * epoch, time=float(epoch), param=param,
                  bin_edges=[0.0, 1.0, 2.0], counts=[3, 3], below=0, above=0, mean=mean, std=0.1,
                  layers=[])


def records(acc: float, *, epochs: int = 3, sharp: float | None = 0.2, gamma_end: float = 1.0,
            step_time: float | list = 0.05, sharp20: float | None = None,
            beta_end: float | None = None, windows: int = 1, robust: float | None = None,
            corruption: float | None = None) -> list[dict]:
    """A run's records: gammas at init, ``windows`` step records per epoch (``step_time`` one
    value, or one per window of the run), gamma (and beta) and epoch records per epoch (the final
    test accuracy ``acc`` in %, earlier epochs lower), the sharpness probes at the end, and a
    robustness record (accuracy ``robust`` % under l2 eps 0.25, corruptions averaging
    ``corruption`` %) when either is given."""
    out = [norm_record(0, 1.0)] + ([norm_record(0, 0.0, "beta")] if beta_end is not None else [])
    times = step_time if isinstance(step_time, list) else [step_time] * (epochs * windows)
    for e in range(1, epochs + 1):
        for w in range(windows):
            step = 10 * windows * (e - 1) + 10 * (w + 1)
            out.append(record(StepRecord, epoch=e, step=step, time=float(e), loss=2.0, acc=0.5,
                              lr=0.1, step_time=times[(e - 1) * windows + w],
                              images_per_s=100.0, load=1.0))
        out.append(norm_record(e, 1.0 + (gamma_end - 1.0) * e / epochs))
        if beta_end is not None:
            out.append(norm_record(e, beta_end * e / epochs, "beta"))
        out.append(epoch_record(e, acc - 2.0 * (epochs - e)))
    for steps, value, rho in ((1, sharp, 0.01), (20, sharp20, 0.003)):
        if value is not None:
            out.append(record(SharpnessRecord, epoch=epochs, step=10 * epochs, time=9.0,
                              steps=steps, rho=rho, value=value, m=128, n=256))
    if robust is not None or corruption is not None:
        out.append(robustness_record(epochs, robust, corruption))
    return out


def robustness_record(epoch: int, robust: float | None, corruption: float | None) -> dict:
    """A ``robustness`` record: l2 eps 0.25 at ``robust`` %, the other attacks lower;
    corruptions at severities 1-3 whose mean is ``corruption`` %."""
    r = 50.0 if robust is None else robust
    attacks = [record(AttackResult, norm="linf", eps=1 / 255, label="1/255", poster=False,
                      acc=max(r - 10, 0) / 100),
               record(AttackResult, norm="l2", eps=0.25, label="0.25", poster=True,
                      acc=r / 100),
               record(AttackResult, norm="l2", eps=0.5, label="0.5", poster=True,
                      acc=max(r - 20, 0) / 100)]
    c = 60.0 if corruption is None else corruption
    corruptions = [record(CorruptionResult, name="contrast", severity=k, level=0.5,
                          acc=(c + d) / 100)
                   for k, d in ((1, 2.0), (2, 0.0), (3, -2.0))]
    return record(RobustnessRecord, epoch=epoch, step=10 * epoch, time=9.5, suite="standard",
                  images=2000, clean_acc=0.7, attacks=attacks,
                  corruptions=corruptions if corruption is not None else [], pgd_steps=10,
                  pgd_step_factor=2.5, seed=0, seconds=1.0)


def robust_record(clean: float, drop: float, images: int = 512) -> dict:
    """A robustness record over the whole suite (``catalog.robustness``) whose accuracy falls
    by ``drop`` per budget step."""
    attacks = []
    for norm in suite.NORMS:
        budgets = [b for b in suite.ATTACKS if b.norm == norm]
        for i, b in enumerate(budgets, start=1):
            attacks.append(record(AttackResult, norm=b.norm, eps=b.eps, label=b.label,
                                  poster=b.poster, acc=max(clean - drop * i, 0.0)))
    corruptions = [record(CorruptionResult, name=name, severity=s, level=level,
                          acc=clean - 0.05 * s)
                   for name, levels in suite.CORRUPTIONS.items()
                   for s, level in enumerate(levels, start=1)]
    return record(RobustnessRecord, epoch=2, step=8, time=3.0, suite="standard", images=images,
                  clean_acc=clean, attacks=attacks, corruptions=corruptions, pgd_steps=10,
                  pgd_step_factor=2.5, seed=0, seconds=2.0)


# A class experiment's runs: final test accuracy (%) per method, SAM-all and SAM-ON 2 points
# above SGD, as at the cpu size
MEANS = {"base": 69.6, "all": 71.6, "norm": 71.5}


def run_records(acc: float, epochs: int, *, gamma_end: float = 1.05, sharp: float = 0.02
                ) -> list[dict]:
    """A class experiment's run: gamma at init, per epoch a step window, the gamma statistics
    and the epoch record (test accuracy rising to ``acc`` %), the sharpness probe at the end."""
    def norm(epoch: int, mean: float) -> dict:
        return record(NormStatsRecord, epoch=epoch, step=10 * epoch, time=float(epoch),
                      param="gamma", bin_edges=[0.0, 1.0, 2.0], counts=[3, 3], below=0, above=0,
                      mean=mean, std=0.1, layers=[])

    out = [norm(0, 1.0)]
    for e in range(1, epochs + 1):
        out.append(record(StepRecord, epoch=e, step=10 * e, time=float(e), loss=2.0, acc=0.5,
                          lr=0.1, step_time=0.05, images_per_s=100.0, load=1.0))
        out.append(norm(e, 1.0 + (gamma_end - 1.0) * e / epochs))
        out.append(record(EpochRecord, epoch=e, step=10 * e, time=float(e), train_loss=2.0,
                          train_ce=2.0, train_acc=0.5, test_loss=2.1, test_ce=2.1,
                          test_acc=(acc - (epochs - e) * 0.1) / 100, epoch_time=1.0,
                          eta_s=float(epochs - e), sam=True))
    out.append(record(SharpnessRecord, epoch=epochs, step=10 * epochs, time=float(epochs),
                      steps=1, rho=0.01, value=sharp, m=128, n=256))
    return out
