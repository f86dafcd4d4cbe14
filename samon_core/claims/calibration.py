"""The seed-to-seed spread of every metric at every size, with how it was measured (or why it is
assumed), and the paper's effect per comparison: the data that the verdicts' floors, the error
rates of ``bench/verdict_calibration.py`` and the "needs about N seeds" of the Claims page come
from. Plain data; no torch.

Sources, per entry (``Spread.source``):

* ``measured``: the lab's own runs, with the command and what was kept. The cpu size's accuracy
  and gamma figures are the 3-seed measurement of issue 12 (`python -m samon_core claim run ID
  --size cpu --seeds 3`, one data draw, 2 cores; bench/README.md "A CPU setting for the
  claims"): per-method mean and standard deviation over the 3 seeds. Its robust, corruption and
  1-step sharpness figures are issue 22's (`claim run robustness --size cpu --seeds 3`, whose
  runs are the accuracy claim's; `claim verdict ID --size cpu --json` lists the per-seed values;
  bench/README.md "Which claims a CPU shows"). Only per-method spreads are recorded, so the
  spread of a *paired* difference is not used here (see ``paired_sd``).
* ``paper``: the standard deviation the paper reports over its 3 seeds (WRN-28-10, CIFAR-100).
* ``assumed``: neither exists; the reason is stated. No GPU run has been made for the gpu size yet.

A metric's **floor** at a size (``floor``) is ``FLOOR_SHARE`` of its largest per-method spread
there: a spread estimated from a few seeds below it is taken as the floor, so identical seeds
never make a gap real, and the floor is in the metric's own units at that size (0.5 points of
accuracy at the cpu size, 0.0004 of sharpness), never one constant for every size.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from samon_core import paper
from samon_core.claims.results import method_name

FLOOR_SHARE = 0.1
MEASURED, PAPER, ASSUMED = "measured", "paper", "assumed"

_CPU_HOW = ("3 seeds on one data draw (claim run ID --size cpu --seeds 3, 2 cores; bench/README "
            "'A CPU setting for the claims'): the per-method standard deviation over the seeds")
_NO_GPU = "no GPU run of the gpu size has been made yet"
_CPU22 = ("3 seeds (0-2) on one data draw, issue 22 (claim run robustness --size cpu --seeds 3, "
          "2 cores; bench/README 'Which claims a CPU shows'): the per-method standard deviation "
          "over the seeds")

# The cpu size's per-seed values measured in issue 22 (seeds 0, 1, 2 in order; one data draw;
# each seed's runs trained in one lockstep group), as `claim verdict ID --size cpu --json` lists
# them for the runs of `claim run ID --size cpu --seeds 3` (bench/README.md "Which claims a CPU
# shows"), rounded to 4-6 digits after the point. metric -> method key -> values. The measured cpu
# spreads of these metrics are their standard deviations (``_cpu_sd``), and the claims' cpu notes
# are their verdicts (``claims.data``), so neither can drift from the values.
CPU_SEEDS: dict[str, dict[str, tuple[float, ...]]] = {
    "accuracy": {
        "base": (69.4, 69.0, 70.5), "all": (73.75, 67.6, 73.45), "norm": (74.05, 65.75, 74.7),
        "no-norm": (74.05, 68.6, 73.85), "random": (74.85, 73.45, 78.4),
        # the variants claim's runs (ASAM elementwise at the WRN figure's rho 5 / 10 stayed at
        # chance, 10%, for all 30 epochs in every seed and both scopes)
        "all@asam": (10.9, 10.0, 10.55), "norm@asam": (10.0, 10.35, 10.0),
        "all@asam-layerwise": (71.5, 66.15, 72.35), "norm@asam-layerwise": (66.6, 57.3, 62.75),
        "all@linf": (74.55, 76.7, 78.0), "norm@linf": (78.15, 73.05, 78.4),
    },
    "sharpness@1": {
        "base": (0.15816, 0.15277, 0.17842), "all": (0.0619, 0.05139, 0.05929),
        "norm": (0.05613, 0.04992, 0.06716),
    },
    "robust-l2": {
        # float32 accuracies, kept to 8 digits: their effect 50.95 must not round as a tie
        "base": (2.65, 6.8499997, 2.6000001), "all": (52.200001, 57.749999, 55.000001),
        "norm": (51.300001, 52.950001, 54.750001),
    },
    "corruption": {
        "base": (62.9875, 62.3625, 63.5208), "all": (67.7792, 62.7833, 68.175),
        "norm": (68.0, 60.1833, 68.9333),
    },
    # the shift of the mean gamma from initialisation to epoch 30 (results.gamma_shift) of the
    # same runs: it falls under every method here (weight decay), least under SGD and SAM-ON
    "gamma": {
        "base": (-0.03407, -0.03773, -0.02754), "all": (-0.1067, -0.112, -0.10543),
        "norm": (-0.02697, -0.04395, -0.02475),
    },
}


# The lockstep step-time ratios measured at the cpu size in issue 22 (`claim verdict ID --size cpu
# --json` on the runs of `claim run ID --size cpu --seeds 3`): claim -> (the ratio of mean step
# times over paired blocks of steps, its 95% interval, seeds). cost: SAM-ON / SAM-all on the
# accuracy claim's runs; blocks: SAM-ON on B3's norm layers / SAM-ON on all of them.
CPU_RATIOS: dict[str, tuple[float, float, float, int]] = {
    "cost": (0.8744, 0.8462, 0.9026, 3),
    "blocks": (0.8216, 0.728, 0.9152, 3),
}


def _cpu_sd(metric: str, digits: int) -> dict[str, float]:
    """The standard deviation over the seeds of each method family's ``CPU_SEEDS[metric]``,
    rounded. The variants' keys (``all@asam``, ...) are left out: a collapsed run's tiny spread
    would stand for the size's (their parts take the largest family's, ``Spread.of``)."""
    return {m: round(statistics.stdev(v), digits) for m, v in CPU_SEEDS[metric].items()
            if "@" not in m}


def cpu_means(metric: str, digits: int) -> str:
    """'SGD 4.0, SAM-all 55.0, SAM-ON 53.0': the methods' means over ``CPU_SEEDS[metric]``."""
    return ", ".join(f"{method_name(m)} {statistics.mean(v):.{digits}f}"
                     for m, v in CPU_SEEDS[metric].items() if "@" not in m)




@dataclass(frozen=True)
class Spread:
    """The seed-to-seed standard deviation of one metric at one size, per method family key;
    ``typical`` a typical value of the metric there (sharpness effects scale with it)."""

    sd: Mapping[str, float]
    source: str
    how: str
    typical: float | None = None

    def of(self, method: str) -> float:
        """The spread of ``method`` (the largest of the others where it has none of its own)."""
        return self.sd.get(method, max(self.sd.values()))

    def as_dict(self) -> dict:
        return {"sd": dict(self.sd), "source": self.source, "how": self.how,
                "typical": self.typical}


@dataclass(frozen=True)
class CostSpread:
    """The noise of the cost ratio: its step-window samples and its seeds."""

    window_cv: float  # relative sd of one step-window's mean step time around its run's mean
    windows: int  # step windows a run of the size records (one per log_every_s, one per epoch)
    seed_sd: float  # sd of the per-seed ratio SAM-ON / SAM-all over lockstep seeds
    source: str
    how: str

    def as_dict(self) -> dict:
        return {"window_cv": self.window_cv, "windows": self.windows, "seed_sd": self.seed_sd,
                "source": self.source, "how": self.how}


def _acc(sd: dict[str, float], source: str, how: str) -> Spread:
    return Spread(sd, source, how)


_P = paper.TEST_ACCURACY
_S1, _S20 = paper.SHARPNESS[(1, 0.01)], paper.SHARPNESS[(20, 0.003)]
_RANDOM = paper.SPARSE_BY_KEY["random"].accuracy
_PAPER_SHARP_HOW = ("the paper's standard deviation over 3 seeds (WRN-28-10, CIFAR-100, "
                    "sharpness table)")
# A spread the paper prints as 0.000 (the 20-step probe's SGD) is taken as this much: a spread
# of 0 would make any difference decisive.
_SD_FLOOR = 0.001
_S20_SD = {k: max(s.std, _SD_FLOOR) for k, s in _S20.items()}
# '0.000 printed for SGD': the spreads under the floor, named.
_S20_FLOORED = ", ".join(f"{s.std:.3f} printed for {paper.method_name(k)}"
                         for k, s in _S20.items() if s.std < _SD_FLOOR)

SPREADS: dict[str, dict[str, Spread]] = {
    "cpu": {
        "accuracy": _acc(_cpu_sd("accuracy", 1), MEASURED,
                         f"{_CPU_HOW}, final test accuracy in points ({cpu_means('accuracy', 1)});"
                         " issue 22's runs of the same configs gave the same values"),
        # issue 12 recorded 0.004 on values ~0.008 before the probe became the adaptive
        # m-sharpness the verdict reads; issue 22's runs give ~0.058 for SAM, 0.163 for SGD
        "sharpness@1": Spread(_cpu_sd("sharpness@1", 4), MEASURED,
                              f"{_CPU22} of the 1-step adaptive m-sharpness "
                              f"({cpu_means('sharpness@1', 3)})",
                              typical=round(statistics.mean(CPU_SEEDS["sharpness@1"]["all"]), 3)),
        "gamma": Spread(_cpu_sd("gamma", 4), MEASURED,
                        f"{_CPU22} of the mean gamma's shift since initialisation "
                        f"({cpu_means('gamma', 3)})"),
    },
    "gpu": {
        "accuracy": _acc(dict.fromkeys(("base", "all", "norm", "no-norm", "random"), 0.5), ASSUMED,
                         f"{_NO_GPU}; 0.5 points assumed: short ResNet-20 runs on CIFAR-100 "
                         "spread more than the paper's 200-epoch WRN-28-10 (0.2-0.3 points)"),
        "sharpness@1": Spread({k: s.std for k, s in _S1.items()}, ASSUMED,
                              f"{_NO_GPU}; the paper's WRN-28-10 spreads and values taken as "
                              "they are", typical=_S1["all"].mean),
        "sharpness@20": Spread(_S20_SD, ASSUMED,
                               f"{_NO_GPU}; the paper's WRN-28-10 spreads ({_S20_FLOORED}, "
                               f"taken as {_SD_FLOOR:g}) and values",
                               typical=_S20["all"].mean),
        "gamma": Spread({"base": 0.008, "all": 0.008, "norm": 0.008}, ASSUMED,
                        f"{_NO_GPU}; the cpu size's measured 0.008 (the paper prints no gamma "
                        "numbers)"),
    },
    "paper": {
        "accuracy": _acc({**{k: s.std for k, s in _P.items()}, "no-norm": _P["all"].std,
                          "random": _RANDOM.std}, PAPER,
                         "the paper's standard deviation over 3 seeds (Table: "
                         + ", ".join(f"{paper.method_name(k)} {s.std:g}" for k, s in _P.items())
                         + f"; {paper.method_name('random')} {_RANDOM.std:g}); no-norm and the "
                         f"ASAM runs have none printed: {_P['all'].std:g} assumed "
                         f"({paper.method_name('all')}'s)"),
        "sharpness@1": Spread({k: s.std for k, s in _S1.items()}, PAPER,
                              _PAPER_SHARP_HOW, typical=_S1["all"].mean),
        "sharpness@20": Spread(_S20_SD, PAPER,
                               f"{_PAPER_SHARP_HOW} ({_S20_FLOORED}: taken as {_SD_FLOOR:g})",
                               typical=_S20["all"].mean),
        "gamma": Spread({"base": 0.008, "all": 0.008, "norm": 0.008}, ASSUMED,
                        "the paper prints no gamma numbers; the cpu size's measured 0.008"),
    },
}
# Robust accuracy (l2 PGD, eps 0.25) and corruption accuracy, in points. The cpu size's are
# measured (issue 22, 3 seeds of this suite on all 2,000 test images); the other sizes assumed.
_BINOMIAL = ("plus the binomial noise of {n} test images at ~40% accuracy ({b:.1f} points) on top "
             "of the poster's ViT seed spread (0.2-1.3 points)")
SPREADS["cpu"]["robust-l2"] = Spread(
    _cpu_sd("robust-l2", 1), MEASURED,
    _CPU22 + " of the accuracy under the suite's 10-step l2 PGD at eps 0.25 (pixel units) on "
    f"all 2,000 test images, in points ({cpu_means('robust-l2', 1)})")
SPREADS["cpu"]["corruption"] = Spread(
    _cpu_sd("corruption", 1), MEASURED,
    _CPU22 + " of the mean accuracy under the suite's 4 corruptions x 3 severities on all 2,000 "
    f"test images, in points ({cpu_means('corruption', 1)})")
for _size, _rob, _rob_how, _cor, _cor_how in (
    ("gpu", dict.fromkeys(("base", "all", "norm"), 1.5),
     f"{_NO_GPU}; " + _BINOMIAL.format(n="2,000", b=1.1), dict.fromkeys(("base", "all", "norm"),
                                                                      0.5),
     f"{_NO_GPU}; the gpu size's assumed accuracy spread"),
    ("paper", dict.fromkeys(("base", "all", "norm"), 2.2),
     "no run of the paper size has been made; " + _BINOMIAL.format(n="512", b=2.2),
     dict.fromkeys(("base", "all", "norm"), 0.3),
     "the paper prints no corruption numbers; its accuracy spread (0.2-0.3 points)"),
):
    SPREADS[_size]["robust-l2"] = Spread(dict(_rob), ASSUMED, _rob_how)
    SPREADS[_size]["corruption"] = Spread(dict(_cor), ASSUMED, _cor_how)

# beta is reported beside gamma, never decides: its spread is taken as gamma's.
for _size in SPREADS.values():
    _size["beta"] = _size["gamma"]

COST_SPREADS: dict[str, CostSpread] = {
    "cpu": CostSpread(
        window_cv=0.10, windows=110, seed_sd=0.03, source=f"{MEASURED} (seeds), {ASSUMED} "
        "(windows)",
        how="per-seed ratio measured: 3 lockstep seeds (issue 12, 'seeds differ by 0.03'); the "
            "noise of one step window assumed 10%: a 4-epoch lockstep run of the cpu size on "
            "this shared 2-core machine under load 6-7 (other jobs) had its step times jump "
            "from 0.05 s to 1-3 s, a measurement of the load, not kept; 30 epochs record "
            "about 110 windows per run (one per log_every_s = 2 s, one per epoch)"),
    "gpu": CostSpread(
        window_cv=0.03, windows=150, seed_sd=0.02, source=ASSUMED,
        how=f"{_NO_GPU}; a GPU's step times are steadier than a shared CPU's: 3% per window "
            "and 0.02 between seeds assumed"),
    "paper": CostSpread(
        window_cv=0.03, windows=2000, seed_sd=0.02, source=ASSUMED,
        how="the poster prints no timing spread; as the gpu size, with 200 epochs of windows"),
}
# The blocks claim (SAM-ON on B3's norm layers only vs SAM-ON on all) is timed like the cost
# claim, in lockstep: its step-time noise is taken as the cost claim's (assumed: not measured).
BLOCKS_COST_SPREADS: dict[str, CostSpread] = {
    size: CostSpread(c.window_cv, c.windows, c.seed_sd, ASSUMED,
                     "the cost claim's step-time noise at this size, taken over (the blocks "
                     "claim's lockstep runs have not been timed): " + c.how)
    for size, c in COST_SPREADS.items()
}


def spread(size: str, metric: str) -> Spread | None:
    """The spread of ``metric`` at ``size`` (None where the size does not record it)."""
    return SPREADS.get(size, {}).get(metric)


def floor(size: str | None, metric: str) -> float:
    """The smallest standard deviation a verdict uses for ``metric`` at ``size`` (module doc);
    for runs of no known size, the largest floor of the sizes (the most careful)."""
    sizes = [size] if size in SPREADS and metric in SPREADS[size] else \
        [s for s in SPREADS if metric in SPREADS[s]]
    return max(FLOOR_SHARE * max(SPREADS[s][metric].sd.values()) for s in sizes)


def paired_sd(size: str, metric: str, a: str, b: str, correlation: float = 0.0) -> float:
    """The standard deviation of a per-seed difference A - B at ``size``: from the per-method
    spreads with the seeds' ``correlation`` (not measured at any size: 0, as if the methods'
    seed effects were independent; the paired design's real spread is smaller when they move
    together, so the seeds needed are an upper bound)."""
    s = SPREADS[size][metric]
    sa, sb = s.of(a), s.of(b)
    return math.sqrt(max(sa * sa + sb * sb - 2 * correlation * sa * sb, 0.0))


@dataclass(frozen=True)
class Effect:
    """The paper's effect on one metric at one size: the mean per method family (in the size's
    units), with where it comes from."""

    means: Mapping[str, float]
    how: str
    source: str = PAPER
    extra: Mapping[str, float] = field(default_factory=dict)
