"""Histograms and per-layer statistics of the normalization parameters gamma and beta.

A normalization layer computes ``gamma * (x - mu) / sigma + beta`` (``samon_core.norms``). Mueller
et al. ("Normalization Layers Are All That Sharpness-Aware Minimization Needs", NeurIPS 2023)
show that SAM-ON changes the distribution of these affine parameters: gammas, initialised at 1,
drift to larger values than under SGD (roughly within 0..2.5 in the paper's figures). To watch this
over training, every epoch gets one ``norm_stats`` record per role::

    {"kind": "norm_stats", "epoch", "step", "time", "param": "gamma" | "beta",
     "bin_edges": [e_0, ..., e_n], "counts": [c_0, ..., c_{n-1}], "below", "above",
     "mean", "std", "layers": [{"name", "mean", "std"}, ...]}

(``samon_core.records.NormStatsRecord``).

The bin edges are fixed for the whole run (``fixed_bins``: gamma over [-0.5, 2.5], beta over
[-1, 1]) so that histograms of different epochs and runs are directly comparable. Values outside
the range are not put into the end bins (that would draw a spike there that is no density) but
counted apart: ``below`` (< e_0) and ``above`` (> e_n), so counts + below + above = the number of
scalar gammas (betas), and the out-of-range share is (below + above) / that number. A run whose
gammas leave the range (SAM-ON grows them) shows it in that share instead of in a wrong end bin.
Bin k is [e_k, e_{k+1}), the last bin also includes its right edge; NaN (a diverged run) is
counted nowhere. ``std`` is the population standard deviation (0 for a single value, never NaN).
Cost: one ``torch.cat`` per role and one ``bucketize`` + ``bincount``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from samon_core.norms import norm_parameters
from samon_core.records import LayerStats, NormStatsRecord

ROLES = ("gamma", "beta")

# Fixed ranges: gamma starts at 1 and grows under SAM-ON; beta starts at 0 and stays small.
BIN_RANGES: dict[str, tuple[float, float]] = {"gamma": (-0.5, 2.5), "beta": (-1.0, 1.0)}
DEFAULT_BINS = {"gamma": 60, "beta": 40}  # bin width 0.05 for both


def fixed_bins(kind: str, n: int | None = None) -> list[float]:
    """``n + 1`` evenly spaced bin edges for ``kind`` ("gamma" or "beta"), the same every call."""
    lo, hi = BIN_RANGES[kind]
    n = DEFAULT_BINS[kind] if n is None else n
    if n < 1:
        raise ValueError("need at least one bin")
    return [round(lo + (hi - lo) * i / n, 10) for i in range(n + 1)]


def binned_counts(
    values: torch.Tensor, edges: Sequence[float]
) -> tuple[list[int], int, int]:
    """(counts, below, above) of ``values`` (any shape) on the bins ``edges`` (increasing):
    n = len(edges) - 1 counts of the values in [e_0, e_n], and the numbers of values < e_0 and
    > e_n. NaN is in none of them."""
    e = torch.as_tensor(edges, dtype=values.dtype, device=values.device)
    v = values.detach().reshape(-1)
    below, above = v < e[0], v > e[-1]
    inside = v[(v >= e[0]) & (v <= e[-1])]
    # Index of the bin = number of inner edges <= v: [e_k, e_{k+1}) -> k, and e_n -> n - 1.
    idx = torch.bucketize(inside, e[1:-1], right=True)
    counts = torch.bincount(idx, minlength=len(edges) - 1)
    # one transfer for the counts and both tallies
    out = torch.cat([counts, torch.stack([below.sum(), above.sum()])]).tolist()
    return out[:-2], out[-2], out[-1]


def _as_edges(kind: str, bins: int | Sequence[float] | None) -> list[float]:
    if bins is None or isinstance(bins, int):
        return fixed_bins(kind, bins)
    return [float(b) for b in bins]


def norm_stats_records(
    model: nn.Module,
    epoch: int,
    step: int,
    time: float,
    bins_gamma: int | Sequence[float] | None = None,
    bins_beta: int | Sequence[float] | None = None,
) -> list[NormStatsRecord]:
    """The ``norm_stats`` records of ``model`` now: one for gamma, one for beta.

    ``bins_*``: bin edges (e.g. ``fixed_bins("gamma")``, computed once per run), a number of bins
    over the fixed range, or None for the defaults. A role the model has no parameters for (no
    norm layers, or norm layers without affine parameters) gets no record.
    """
    per_role: dict[str, list[tuple[str, torch.Tensor]]] = {r: [] for r in ROLES}
    for layer, role, p in norm_parameters(model):
        if role in per_role:
            per_role[role].append((layer, p.detach().float().reshape(-1)))

    records: list[NormStatsRecord] = []
    for role, bins in (("gamma", bins_gamma), ("beta", bins_beta)):
        tensors = per_role[role]
        if not tensors:
            continue
        edges = _as_edges(role, bins)
        values = torch.cat([t for _, t in tensors])  # all scalars of this role, (P,)
        counts, below, above = binned_counts(values, edges)
        # Per-layer mean/std on the device, then a single transfer of 2 x L numbers.
        stats = torch.stack([
            torch.stack([t.mean(), t.std(unbiased=False)]) for _, t in tensors
        ]).tolist()  # (L, 2)
        records.append(NormStatsRecord(
            kind="norm_stats",
            epoch=epoch,
            step=step,
            time=time,
            param=role,
            bin_edges=edges,
            counts=counts,
            below=below,
            above=above,
            # exact, over all P values: the histogram's bins are too coarse for small shifts
            mean=float(values.mean()),
            std=float(values.std(unbiased=False)),
            layers=[
                LayerStats(name=layer, mean=mean, std=std)
                for (layer, _), (mean, std) in zip(tensors, stats, strict=True)
            ],
        ))
    return records
