"""The norm layers' gamma (and beta) for the charts: histograms per run and epoch on common,
fixed axes (``histogram_frames``), the mean per epoch (``distribution_summary``) and the mean of
each layer (``layer_means``), from the ``norm_stats`` records the trainer writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported lazily
    import pandas as pd


MAX_DISPLAY_BINS = 30  # merge recorded bins when the values spread over more of them


@dataclass
class HistogramFrames:
    """Histograms of one parameter (gamma) per run and epoch, on display bins and axes fixed for
    the whole comparison.

    ``density[label][epoch]`` is the share of *all* the run's parameters in each display bin
    (bin edges ``edges[label]``); ``outside[label][epoch]`` the share outside the recorded edges
    (the record's ``below`` + ``above``). ``epochs`` lists every epoch any run has. ``x_range``
    covers the bins holding any mass; ``y_max`` fits the epochs after 0 (at epoch 0 every gamma
    is 1: one bin at 100%, which would flatten the rest), so ``clipped`` says whether a shown
    epoch reaches above it. ``spread_bins`` is the number of recorded bins the values cover:
    with 3 or fewer the histogram cannot show finer shifts (``bin_width``)."""

    epochs: list[int]
    edges: dict[str, list[float]]
    density: dict[str, dict[int, list[float]]]
    outside: dict[str, dict[int, float]]
    x_range: tuple[float, float]
    y_max: float
    labels: list[str]
    clipped: bool = False
    bin_width: float = 0.0
    spread_bins: int = 0

    @property
    def centers(self) -> dict[str, list[float]]:
        return {k: [(e[i] + e[i + 1]) / 2 for i in range(len(e) - 1)]
                for k, e in self.edges.items()}


def _valid(rec: Mapping[str, Any]) -> tuple[list[float], list[int], int] | None:
    """(edges, counts, values outside) of a usable record, else None."""
    edges, counts = rec.get("bin_edges"), rec.get("counts")
    if not edges or not counts or len(edges) != len(counts) + 1:
        return None
    out = sum(int(rec.get(k) or 0) for k in ("below", "above"))
    if sum(counts) + out <= 0:
        return None
    return list(edges), list(counts), out


def rebin(edges: Sequence[float], counts: Sequence[int], factor: int) -> tuple[list, list]:
    """Merge every ``factor`` neighbouring bins (the last bin takes what is left)."""
    if factor <= 1:
        return list(edges), list(counts)
    n = len(counts)
    new_edges = [edges[i] for i in range(0, n, factor)] + [edges[n]]
    new_counts = [sum(counts[i:i + factor]) for i in range(0, n, factor)]
    return new_edges, new_counts


def _mass_bins(stats: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[int, int, int]:
    """(first, last, number) of the recorded bins holding any mass, over all runs and epochs."""
    lo, hi = None, None
    for recs in stats.values():
        for rec in recs:
            v = _valid(rec)
            nz = [i for i, n in enumerate(v[1]) if n > 0] if v else []
            if nz:
                lo = nz[0] if lo is None else min(lo, nz[0])
                hi = nz[-1] if hi is None else max(hi, nz[-1])
    if lo is None:
        return 0, 0, 0
    return lo, hi, hi - lo + 1


def histogram_frames(stats: Mapping[str, Sequence[Mapping[str, Any]]]) -> HistogramFrames:
    """From ``norm_stats`` records per run label (``RunData.gamma``) to ``HistogramFrames``
    (see there): display bins merged from the recorded ones when the values spread over more
    than ``MAX_DISPLAY_BINS``, the x range zoomed to where the values are."""
    first, last, spread = _mass_bins(stats)
    factor = max(1, math.ceil(spread / MAX_DISPLAY_BINS))
    edges_of: dict[str, list[float]] = {}
    density: dict[str, dict[int, list[float]]] = {}
    outside: dict[str, dict[int, float]] = {}
    lo, hi, width = math.inf, -math.inf, 0.0
    for label, recs in stats.items():
        for rec in recs:
            v = _valid(rec)
            if v is None:
                continue
            edges, counts = rebin(v[0], [int(c) for c in v[1]], factor)
            total = float(sum(v[1]) + v[2])
            epoch = int(rec.get("epoch", 0))
            edges_of[label] = edges
            density.setdefault(label, {})[epoch] = [n / total for n in counts]
            outside.setdefault(label, {})[epoch] = v[2] / total
            nz = [i for i, n in enumerate(counts) if n > 0]
            if nz:
                width = edges[1] - edges[0]
                lo, hi = min(lo, edges[nz[0]]), max(hi, edges[nz[-1] + 1])
    if not math.isfinite(lo):
        lo, hi, width = 0.0, 2.0, 0.05
    margin = max(0.05 * (hi - lo), 2 * width)
    later = [max(d) for per in density.values() for e, d in per.items() if e > 0 and d]
    every = [max(d) for per in density.values() for d in per.values() if d]
    top = max(later) if later else max(every, default=1.0)
    y_max = top * 1.1 if top > 0 else 1.0
    return HistogramFrames(
        epochs=sorted({e for per in density.values() for e in per}),
        edges=edges_of,
        density=density,
        outside=outside,
        x_range=(lo - margin, hi + margin),
        y_max=y_max,
        labels=[label for label in stats if label in density],
        clipped=max(every, default=0.0) > y_max,
        bin_width=width,
        spread_bins=spread,
    )


def outside_share(hf: HistogramFrames) -> dict[str, float]:
    """Per run label, the largest share of values outside the recorded edges over its epochs
    (only the runs where it is not zero)."""
    out = {}
    for label, per in hf.outside.items():
        worst = max(per.values(), default=0.0)
        if worst > 0:
            out[label] = worst
    return out


def distribution_summary(recs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per epoch: the exact mean over all parameters (``mean``, None in records written before it
    existed), the mean of the histogram (from bin centres), and the mean of the per-layer means;
    columns epoch, mean, hist_mean, layer_mean."""
    import pandas as pd

    rows = []
    for rec in recs:
        edges, counts = rec.get("bin_edges") or [], rec.get("counts") or []
        total = float(sum(counts))
        if not total or len(edges) != len(counts) + 1:
            continue
        hist_mean = sum(
            n * (edges[i] + edges[i + 1]) / 2 for i, n in enumerate(counts)
        ) / total
        layers = [ly.get("mean") for ly in rec.get("layers") or [] if ly.get("mean") is not None]
        rows.append({
            "epoch": rec.get("epoch"),
            "mean": rec["mean"] if rec.get("mean") is not None else float("nan"),
            "hist_mean": hist_mean,
            "layer_mean": sum(layers) / len(layers) if layers else float("nan"),
        })
    return pd.DataFrame(rows, columns=["epoch", "mean", "hist_mean", "layer_mean"])


def layer_means(recs: Sequence[Mapping[str, Any]], epoch: int | None = None) -> pd.DataFrame:
    """Per-layer mean and std of gamma at ``epoch`` (default: the last one recorded), in network
    order: columns index, name, mean, std, epoch."""
    import pandas as pd

    cols = ["index", "name", "mean", "std", "epoch"]
    if not recs:
        return pd.DataFrame(columns=cols)
    if epoch is None:
        rec = recs[-1]
    else:
        matching = [r for r in recs if r.get("epoch") == epoch]
        if not matching:
            return pd.DataFrame(columns=cols)
        rec = matching[-1]
    rows = [
        [i, ly.get("name", str(i)), ly.get("mean"), ly.get("std"), rec.get("epoch")]
        for i, ly in enumerate(rec.get("layers") or [])
    ]
    return pd.DataFrame(rows, columns=cols)

