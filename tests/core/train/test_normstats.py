"""samon_core.train.normstats: fixed-bin gamma/beta histograms and per-layer statistics."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from samon_core.train.normstats import binned_counts, fixed_bins, norm_stats_records


def _model() -> nn.Sequential:
    # Norm parameters: BatchNorm2d(4) + LayerNorm(5) -> 9 gammas, 9 betas; the conv and linear
    # layers carry weights and biases that must not be counted.
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 5), nn.LayerNorm(5),
    )


def test_fixed_bins_are_fixed_and_cover_the_ranges():
    g = fixed_bins("gamma")
    assert g == fixed_bins("gamma") and g[0] == -0.5 and g[-1] == 2.5 and len(g) == 61
    b = fixed_bins("beta", 10)
    assert b[0] == -1.0 and b[-1] == 1.0 and len(b) == 11
    assert all(x < y for x, y in itertools.pairwise(g))
    with pytest.raises(KeyError):
        fixed_bins("alpha")


def test_records_count_every_norm_parameter():
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[6].bias.uniform_(-0.3, 0.3)
    recs = norm_stats_records(model, epoch=0, step=0, time=0.0)
    assert [r["param"] for r in recs] == ["gamma", "beta"]
    for r in recs:
        assert r["kind"] == "norm_stats" and (r["epoch"], r["step"], r["time"]) == (0, 0, 0.0)
        assert sum(r["counts"]) == 9 and (r["below"], r["above"]) == (0, 0)
        assert len(r["counts"]) == len(r["bin_edges"]) - 1
        assert [layer["name"] for layer in r["layers"]] == ["1", "6"]
    gamma = recs[0]["layers"][0]
    w = model[1].weight.detach()
    assert gamma["mean"] == pytest.approx(w.mean().item())
    assert gamma["std"] == pytest.approx(w.std(unbiased=False).item())
    # LayerNorm gammas are all 1 at init: one layer, zero spread, all in the bin holding 1.0.
    ln = recs[0]["layers"][1]
    assert ln["mean"] == 1.0 and ln["std"] == 0.0
    # the record's overall mean is exact over all gammas (weighted by layer size, not binned)
    all_gammas = torch.cat([model[1].weight.detach(), model[6].weight.detach()])
    assert recs[0]["mean"] == pytest.approx(all_gammas.mean().item(), abs=1e-6)
    assert recs[0]["std"] == pytest.approx(all_gammas.std(unbiased=False).item(), abs=1e-6)
    edges = recs[0]["bin_edges"]
    k = max(i for i, e in enumerate(edges[:-1]) if e <= 1.0)
    assert recs[0]["counts"][k] >= 5


def test_bin_edges_identical_across_epochs():
    model = _model()
    edges = fixed_bins("gamma", 30)
    first = norm_stats_records(model, 0, 0, 0.0, bins_gamma=edges)
    with torch.no_grad():
        model[1].weight.mul_(3.0)  # training moved the gammas
    later = norm_stats_records(model, 5, 100, 12.5, bins_gamma=edges)
    assert first[0]["bin_edges"] == later[0]["bin_edges"] == edges
    assert first[1]["bin_edges"] == later[1]["bin_edges"] == fixed_bins("beta")
    assert first[0]["counts"] != later[0]["counts"]
    assert norm_stats_records(model, 5, 100, 12.5, bins_gamma=30)[0]["bin_edges"] == edges


def test_out_of_range_values_are_counted_apart_not_in_the_edge_bins():
    """Values outside the fixed range go to below / above; the end bins hold in-range values only
    (the right edge itself belongs to the last bin); counts + below + above = all values."""
    edges = [0.0, 1.0, 2.0, 3.0]
    v = torch.tensor([-10.0, -1e-6, 0.0, 0.5, 1.0, 2.999, 3.0, 3.0001, 50.0, float("nan")])
    assert binned_counts(v, edges) == ([2, 1, 2], 2, 2)
    assert binned_counts(torch.tensor([]), edges) == ([0, 0, 0], 0, 0)
    model = _model()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([-7.0, 9.0, 2.5, 1.0]))  # 1 below, 1 above [-0.5, 2.5]
    rec = norm_stats_records(model, 1, 1, 1.0)[0]
    assert (rec["below"], rec["above"]) == (1, 1)
    assert rec["counts"][0] == 0 and rec["counts"][-1] == 1  # only the 2.5 (the right edge)
    assert sum(rec["counts"]) + rec["below"] + rec["above"] == 9
    assert rec["mean"] == pytest.approx((-7.0 + 9.0 + 2.5 + 1.0 + 5 * 1.0) / 9)  # exact, all 9


def test_models_without_norm_parameters():
    assert norm_stats_records(nn.Sequential(nn.Linear(3, 3)), 0, 0, 0.0) == []
    no_affine = nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.GroupNorm(1, 3))
    recs = norm_stats_records(no_affine, 0, 0, 0.0)
    assert [r["layers"][0]["name"] for r in recs] == ["1", "1"]  # only the GroupNorm
    rms = norm_stats_records(nn.Sequential(nn.RMSNorm(4)), 0, 0, 0.0)
    assert [r["param"] for r in rms] == ["gamma"]  # RMSNorm has no beta
