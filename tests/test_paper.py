"""samon_core.paper: the paper's numbers, the rho table, and that the lab's defaults, presets and
cost model quote them. No torch."""

from __future__ import annotations

import pytest

from samon_core import paper
from samon_core.paper import DEFAULT_RHO, RHO_COLUMN, RHO_SOURCE, paper_rho
from samon_core.runs.config import CHOICES, RunConfig
from samon_core.runs.estimate import SAM_COST_FACTOR
from samon_core.runs.presets import get_preset

# --- rho defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adaptive", "ball", "all_rho", "norm_rho", "source"),
    [
        ("none", "l2", 0.2, 1.0, "paper"),
        ("elementwise", "l2", 5.0, 10.0, "paper"),
        ("layerwise", "l2", 0.05, 0.5, "paper"),
        ("elementwise", "linf", 0.01, 0.1, "paper"),
        ("none", "linf", 0.001, 0.01, "guess"),
        ("layerwise", "linf", 0.001, 0.01, "guess"),
    ],
)
def test_rho_defaults(adaptive, ball, all_rho, norm_rho, source):
    assert paper_rho(adaptive, ball, "all") == (all_rho, source)
    assert paper_rho(adaptive, ball, "no-norm") == (all_rho, source)
    assert paper_rho(adaptive, ball, "norm") == (norm_rho, source)
    assert paper_rho(adaptive, ball, "random") == (norm_rho, source)
    c = RunConfig(adaptive=adaptive, ball=ball, scope="norm")
    assert c.resolved_rho() == norm_rho and c.rho_source() == source
    assert c.replace(rho=0.7).resolved_rho() == 0.7
    assert c.replace(rho=0.7).rho_source() == "user"


def test_rho_table_complete():
    for adaptive in CHOICES["adaptive"]:
        for ball in CHOICES["ball"]:
            assert set(DEFAULT_RHO[(adaptive, ball)]) == {"all", "norm"}
            assert RHO_SOURCE[(adaptive, ball)] in ("paper", "guess")
    assert set(RHO_COLUMN) == set(CHOICES["scope"])
    with pytest.raises(ValueError, match="none, elementwise, layerwise.*l2, linf"):
        paper_rho("none", "l1", "all")
    with pytest.raises(ValueError, match="all, norm, no-norm, random"):
        paper_rho("none", "l2", "some")


def test_sam_on_wants_a_larger_rho_than_sam_all():
    """The paper: SAM-ON's best rho is about 2-10x SAM-all's, for every variant."""
    for key, column in DEFAULT_RHO.items():
        assert 2 <= column["norm"] / column["all"] <= 10, key


# --- training recipe ----------------------------------------------------------------------------


def test_recipe_is_a_valid_run_config():
    c = RunConfig(**paper.TRAINING_SETUP, **paper.SHARPNESS_PROBE)
    for name, value in {**paper.TRAINING_SETUP, **paper.SHARPNESS_PROBE}.items():
        assert getattr(c, name) == value, name
    assert c.sharpness_rho == paper.SHARPNESS_RHOS_1STEP[0]
    assert c.sharpness_rho_multi == paper.SHARPNESS_RHOS_MULTI[0]


def test_paper_preset_uses_the_recipe():
    cfg = get_preset("cifar100-wrn-paper").configs["SAM-ON"]
    for name, value in {**paper.TRAINING_SETUP, **paper.SHARPNESS_PROBE}.items():
        assert getattr(cfg, name) == value, name
    description = get_preset("cifar100-wrn-paper").description
    assert f"{paper.TEST_ACCURACY['SAM-ON'].mean:.1f}%" in description
    assert f"rho {DEFAULT_RHO[('none', 'l2')]['norm']}" in description


# --- results ------------------------------------------------------------------------------------


def test_results_tell_the_papers_story():
    """SAM-ON is the most accurate and, on every probe, the sharpest of SGD / SAM-all / SAM-ON;
    the random mask of the same sparsity does not help."""
    acc = paper.TEST_ACCURACY
    assert acc["SAM-ON"].mean > acc["SAM-all"].mean > acc["SGD"].mean
    assert acc["random mask"].mean < acc["SAM-all"].mean
    assert paper.SPARSITY["SAM-ON"] == paper.SPARSITY["random mask"]
    assert set(paper.SHARPNESS) == {
        (20, r) for r in paper.SHARPNESS_RHOS_MULTI
    } | {(1, r) for r in paper.SHARPNESS_RHOS_1STEP}
    for probe, row in paper.SHARPNESS.items():
        assert row["SAM-ON"].mean > max(row["SGD"].mean, row["SAM-all"].mean), probe
    vit = paper.VIT_S32_IMAGENET_LION
    assert vit["SAM-ON"] > vit["SAM-all"] > vit["Lion"]


def test_cost_model_follows_the_step_cost():
    assert SAM_COST_FACTOR["all"] == pytest.approx(2.0)
    assert SAM_COST_FACTOR["norm"] == pytest.approx(5.0 / 3.0)
    assert SAM_COST_FACTOR["no-norm"] == SAM_COST_FACTOR["random"] == SAM_COST_FACTOR["all"]
    assert set(SAM_COST_FACTOR) == set(CHOICES["scope"])
