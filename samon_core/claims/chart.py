"""What a claim card's chart shows, as plain data: one bar per method (mean over seeds, the
seed-to-seed spread as error bar, each seed as a dot) in the method's colour, and a reference line
where the claim has one (the FLOP estimate of the cost claim). No plotting library here: the page
draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from samon_core.catalog import methods
from samon_core.claims.verdicts import Verdict


@dataclass(frozen=True)
class Bar:
    name: str
    mean: float
    std: float
    values: tuple[float, ...]
    color: str


@dataclass(frozen=True)
class ChartData:
    title: str
    y_title: str
    bars: tuple[Bar, ...] = ()
    reference: float | None = None
    reference_label: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def _color(name: str) -> str:
    spec = methods.BY_NAME.get(name)
    return spec.color if spec else methods.method_color(name)


def _bars(per_method: dict) -> tuple[Bar, ...]:
    return tuple(Bar(name, float(s["mean"]), float(s["std"]), tuple(s["values"]), _color(name))
                 for name, s in per_method.items() if s.get("n"))


def _cost_chart(v: Verdict) -> ChartData:
    seeds = v.evidence.get("seeds") or {}
    ratios = [s["ratio"] for s in seeds.values()]
    bars = ()
    if ratios:
        mean = sum(ratios) / len(ratios)
        std = (sum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1)) ** 0.5 \
            if len(ratios) > 1 else 0.0
    # "step time SAM-ON / SAM-all" (the blocks claim: SAM-ON (B3 only) / SAM-ON)
    a, _, b = str(v.evidence.get("metric", "")).removeprefix("step time ").partition(" / ")
    if ratios:
        bars = (Bar(f"{a} / {b}", mean, std, tuple(ratios), _color("SAM-ON")),)
    flop = v.evidence.get("flop_ratio")
    return ChartData(f"Step time of {a} relative to {b} (lockstep runs)", "ratio", bars,
                     flop, "FLOP estimate" if flop is not None else "")


def chart_data(v: Verdict) -> ChartData:
    """The chart of a verdict's evidence (empty bars while nothing was measured)."""
    if v.claim in ("cost", "blocks"):  # step times (cost.py)
        return _cost_chart(v)
    metric = str(v.evidence.get("metric", ""))
    unit = str(v.evidence.get("unit", ""))
    y_title = f"{metric} ({unit})" if unit else metric
    notes = ()
    if v.claim == "sharper" and v.evidence.get("accuracy"):
        acc = v.evidence["accuracy"]
        notes = tuple(f"{k}: test accuracy {s['mean']:.1f}% ± {s['std']:.1f}"
                      for k, s in acc.items() if s.get("n"))
    return ChartData(metric[:1].upper() + metric[1:], y_title,
                     _bars(v.evidence.get("methods") or {}), notes=notes)
