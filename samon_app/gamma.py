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


@dataclass
class HistogramFrames:
    """Histograms of one parameter (gamma) per run and epoch on common, fixed axes.

    ``density[label][epoch]`` is the fraction of parameters per bin (sums to 1), on ``centers``
    of bins of width ``widths``; ``epochs`` lists every epoch any run has; ``x_range`` and
    ``y_max`` are fixed over all epochs and runs."""

    epochs: list[int]
    centers: dict[str, list[float]]
    density: dict[str, dict[int, list[float]]]
    x_range: tuple[float, float]
    y_max: float
    labels: list[str]


def histogram_frames(stats: Mapping[str, Sequence[Mapping[str, Any]]]) -> HistogramFrames:
    """From ``norm_stats`` records per run label (``RunData.gamma``) to ``HistogramFrames``. The
    x range covers the bins holding any mass (over all epochs and runs) with a small margin."""
    centers: dict[str, list[float]] = {}
    density: dict[str, dict[int, list[float]]] = {}
    epochs: set[int] = set()
    lo, hi, y_max = math.inf, -math.inf, 0.0
    for label, recs in stats.items():
        for rec in recs:
            edges, counts = rec.get("bin_edges"), rec.get("counts")
            if not edges or not counts or len(edges) != len(counts) + 1:
                continue
            total = float(sum(counts))
            if total <= 0:
                continue
            epoch = int(rec.get("epoch", 0))
            c = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
            centers[label] = c
            frac = [n / total for n in counts]
            density.setdefault(label, {})[epoch] = frac
            epochs.add(epoch)
            nz = [i for i, n in enumerate(counts) if n > 0]
            lo = min(lo, edges[nz[0]])
            hi = max(hi, edges[nz[-1] + 1])
            y_max = max(y_max, max(frac))
    if not math.isfinite(lo):
        lo, hi = 0.0, 2.0
    margin = 0.05 * (hi - lo or 1.0)
    return HistogramFrames(
        epochs=sorted(epochs),
        centers=centers,
        density=density,
        x_range=(lo - margin, hi + margin),
        y_max=y_max * 1.08 if y_max > 0 else 1.0,
        labels=[label for label in stats if label in density],
    )


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

