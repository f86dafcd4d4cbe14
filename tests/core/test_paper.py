"""samon_core.paper: the paper's numbers, the rho table, and that the lab's defaults, presets and
cost model quote them. No torch."""

from __future__ import annotations

import pytest

from samon_core import paper
from samon_core.catalog import methods
from samon_core.paper import (
    DEFAULT_RHO,
    RHO_CARRIED_OVER,
    RHO_FROM_PAPER,
    RHO_GUESS,
    RHO_SOURCE,
    paper_rho,
)
from samon_core.runs.config import CHOICES, RunConfig
from samon_core.runs.estimate import estimate_seconds
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
    c = RunConfig(adaptive=adaptive, ball=ball, scope="norm", model="wrn28_10")
    assert c.resolved_rho() == norm_rho
    assert c.rho_source() == (RHO_FROM_PAPER if source == "paper" else RHO_GUESS)
    assert c.replace(rho=0.7).resolved_rho() == 0.7
    assert c.replace(rho=0.7).rho_source() == "user"


@pytest.mark.parametrize(
    ("model", "optimizer", "adaptive", "ball", "expected"),
    [
        ("wrn28_10", "sgd", "none", "l2", RHO_FROM_PAPER),
        ("wrn28_10", "sgd", "elementwise", "linf", RHO_FROM_PAPER),
        ("wrn28_10", "adamw", "none", "l2", RHO_CARRIED_OVER),  # tuned with SGD
        ("wrn28_10", "lion", "layerwise", "l2", RHO_CARRIED_OVER),
        ("resnet20", "sgd", "none", "l2", RHO_CARRIED_OVER),  # tuned on the WRN-28-10
        ("tiny_resnet", "sgd", "elementwise", "l2", RHO_CARRIED_OVER),
        ("wrn28_10", "sgd", "none", "linf", RHO_GUESS),  # the paper gives none
        ("vit_tiny", "adamw", "layerwise", "linf", RHO_GUESS),
    ],
)
def test_rho_source_names_the_setting_the_value_was_tuned_in(
    model, optimizer, adaptive, ball, expected
):
    assert paper.rho_source(adaptive, ball, model, optimizer) == expected
    c = RunConfig(model=model, optimizer=optimizer, adaptive=adaptive, ball=ball, scope="all")
    assert c.rho_source() == expected
    assert RHO_FROM_PAPER == "paper (WRN-28-10, SGD)" and RHO_GUESS == "guess"


def test_rho_table_complete():
    for adaptive in CHOICES["adaptive"]:
        for ball in CHOICES["ball"]:
            assert set(DEFAULT_RHO[(adaptive, ball)]) == {"all", "norm"}
            assert RHO_SOURCE[(adaptive, ball)] in ("paper", "guess")
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


@pytest.mark.parametrize(("name", "settings", "augment"), [
    ("cifar100-wrn-paper", paper.TABLE_SETTINGS, "crop_flip"),
    ("cifar100-wrn-paper-autoaugment", paper.AUTHORS_COMMAND_SETTINGS, "autoaugment"),
])
def test_paper_presets_use_the_recipe_with_the_tables_or_the_commands_augmentation(
    name, settings, augment
):
    """The paper preset trains as the poster's numbers were (by inference) trained: basic
    augmentation; the AutoAugment preset as the authors' published command."""
    cfg = get_preset(name).configs["SAM-ON"]
    recipe = {**paper.TRAINING_SETUP, **paper.SHARPNESS_PROBE, **settings}
    for field, value in recipe.items():
        assert getattr(cfg, field) == value, field
    assert (cfg.augment, cfg.precision) == (augment, "fp32")
    assert paper.TABLE_AUGMENT == paper.TRAINING_SETUP["augment"] == "crop_flip"
    assert "--autoaugment" in paper.AUTHORS_COMMAND and "--normalize_bias" in paper.AUTHORS_COMMAND


def test_paper_preset_says_where_each_number_comes_from():
    """The figure's accuracy at the preset's rho (SAM-all ~83.6% at 0.2) and the table's
    (83.11%) are different runs: the description names both, each with its source."""
    description = get_preset("cifar100-wrn-paper").description
    rho, fig = DEFAULT_RHO[("none", "l2")], paper.FIGURE_ACCURACY[("none", "l2")]
    assert f"{fig['all']:.1f}% for SAM-all at rho {rho['all']}" in description
    assert f"{fig['norm']:.1f}% for SAM-ON at rho {rho['norm']}" in description
    assert "authors' figure" in description and "table (mean of three seeds)" in description
    acc = paper.TEST_ACCURACY
    table = f"{acc['base'].mean:.2f}% / {acc['all'].mean:.2f}% / {acc['norm'].mean:.2f}%"
    assert table in description
    assert "83.1%" not in description  # the old text paired rho 0.2 with the table's 83.1%


def test_figure_accuracies_match_the_rho_table():
    """FIGURE_ACCURACY holds a reading for every variant whose rho is read off the figure, and
    SAM-ON beats SAM-all beats SGD in each (reference-facts.md)."""
    assert set(paper.FIGURE_ACCURACY) == {k for k, v in RHO_SOURCE.items() if v == "paper"}
    for key, row in paper.FIGURE_ACCURACY.items():
        assert row["norm"] > row["all"] > paper.FIGURE_SGD_ACCURACY, key
    assert paper.FIGURE_ACCURACY[("none", "l2")]["all"] == 83.6


# --- results ------------------------------------------------------------------------------------


def test_results_tell_the_papers_story():
    """SAM-ON is the most accurate and, on every probe, the sharpest of SGD / SAM-all / SAM-ON;
    the random mask of the same sparsity does not help."""
    acc = paper.TEST_ACCURACY
    assert acc["norm"].mean > acc["all"].mean > acc["base"].mean
    assert set(paper.SHARPNESS) == {
        (20, r) for r in paper.SHARPNESS_RHOS_MULTI
    } | {(1, r) for r in paper.SHARPNESS_RHOS_1STEP}
    for probe, row in paper.SHARPNESS.items():
        assert row["norm"].mean > max(row["base"].mean, row["all"].mean), probe
    vit = paper.VIT_S32_IMAGENET_LION
    assert vit["norm"] > vit["all"] > vit["base"]


def test_sparse_table_is_the_posters():
    """All five columns of the poster's table, SSAM-F at both sparsities included; at 99.95%
    SAM-ON beats both the random mask and SSAM-F."""
    rows = [(r.method, r.sparsity, r.accuracy) for r in paper.SPARSE_PERTURBATION]
    assert rows == [
        ("SAM", 0.0, (83.11, 0.3)),
        ("SAM-ON", 0.9995, (84.19, 0.2)),
        ("random mask", 0.9995, (80.97, 0.2)),
        ("SSAM-F", 0.5, (83.94, 0.1)),
        ("SSAM-F", 0.9995, (83.14, 0.1)),
    ]
    assert [r.key for r in paper.SPARSE_PERTURBATION] == ["all", "norm", "random", "", ""]
    at_9995 = {r.method: r.accuracy.mean for r in paper.SPARSE_PERTURBATION if r.sparsity == 0.9995}
    assert max(at_9995, key=at_9995.get) == "SAM-ON"
    by_key = paper.SPARSE_BY_KEY
    assert list(by_key) == ["all", "norm", "random"]
    # the same runs as the other table
    assert by_key["all"].accuracy == paper.TEST_ACCURACY["all"]
    assert by_key["norm"].accuracy == paper.TEST_ACCURACY["norm"]


def test_vit_table_is_complete():
    for opt in ("AdamW", "Lion"):
        assert list(paper.VIT_S32_IMAGENET[opt]) == list(paper.VIT_EVAL_SETS)
        for row in paper.VIT_S32_IMAGENET[opt].values():
            assert list(row) == ["base", "all", "norm"]  # vanilla is the base optimizer
    adamw, lion = paper.VIT_S32_IMAGENET["AdamW"], paper.VIT_S32_IMAGENET["Lion"]
    assert adamw["ImageNet"]["all"] == (71.47, 0.12)
    assert adamw["ImageNet"]["base"] == (66.89, 0.04)
    assert lion["linf eps=0.5/255"]["norm"] == (34.23, 1.73)
    # the poster's claim for Lion: SAM-ON always above SAM-all and vanilla
    for name, row in lion.items():
        assert row["norm"].mean > max(row["all"].mean, row["base"].mean), name


def test_every_per_method_table_keys_on_the_method_spec():
    """Every per-method table of the paper (and the lab's step cost beside it) is keyed by
    ``MethodSpec.key``, so no reader needs a map from display names."""
    from samon_core.runs.estimate import STEP_COST_F

    rows = [paper.TEST_ACCURACY, STEP_COST_F, paper.VIT_S32_IMAGENET_LION,
            *paper.SHARPNESS.values(), *paper.FIGURE_ACCURACY.values(),
            *paper.DEFAULT_RHO.values(), paper.SPARSE_BY_KEY,
            *(row for opt in paper.VIT_S32_IMAGENET.values() for row in opt.values()),
            *(f(o) for f in (paper.vit_ood_mean, paper.vit_robustness)
              for o in paper.VIT_S32_IMAGENET)]
    for row in rows:
        assert set(row) <= set(methods.BY_KEY), row
    assert {r.key for r in paper.SPARSE_PERTURBATION} <= {"", *methods.BY_KEY}


def test_method_name_is_the_specs_or_the_base_optimizers():
    assert [paper.method_name(k) for k in ("base", "all", "norm", "random")] == \
        ["SGD", "SAM-all", "SAM-ON", "random mask"]
    assert paper.method_name("base", paper.VANILLA) == "vanilla"
    assert paper.method_name("base", "Lion") == "Lion"
    assert paper.method_name("norm", "Lion") == "SAM-ON"  # only the base takes the optimizer's
    with pytest.raises(KeyError):
        paper.method_name("SAM-ON")  # a display name is no key
    # a sparse column is labelled by its family unless the poster prints another label
    assert [c.method for c in paper.SPARSE_PERTURBATION[:3]] == ["SAM", "SAM-ON", "random mask"]


def test_cost_model_follows_the_step_cost():
    assert methods.cost_factor("all") == pytest.approx(2.0)
    assert methods.cost_factor("norm") == pytest.approx(5.0 / 3.0)
    assert methods.cost_factor("no-norm") == methods.cost_factor("random") == 2.0
    # the estimate weighs SAM epochs by that factor: SAM-ON's extra over SGD is 2/3 of SAM-all's
    base = RunConfig(model="tiny_resnet", dataset="synthetic", epochs=2, sharpness_samples=0)
    t = {k: estimate_seconds(base.replace(**m.settings)) for k, m in methods.BY_KEY.items()}
    assert t["norm"] - t["base"] == pytest.approx((t["all"] - t["base"]) * 2 / 3)
    assert t["no-norm"] == t["random"] == t["all"] > t["norm"] > t["base"]


def test_each_scope_takes_its_families_rho_column():
    """No-norm takes SAM-all's rho, the random mask SAM-ON's (MethodSpec.rho_like)."""
    for adaptive, ball in DEFAULT_RHO:
        column = DEFAULT_RHO[(adaptive, ball)]
        assert paper_rho(adaptive, ball, "no-norm")[0] == column["all"]
        assert paper_rho(adaptive, ball, "random")[0] == column["norm"]
