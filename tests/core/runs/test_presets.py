"""Named presets: every preset is valid, labelled by its configs and compares one base config.
No torch. (That the paper's preset follows the paper's recipe is in test_paper.py too.)"""

from __future__ import annotations

import pytest

from samon_core.runs.config import RunConfig
from samon_core.runs.presets import Preset, get_preset, list_presets, preset_configs


def test_presets_all_valid():
    names = list_presets()
    assert {
        "cpu-quick-demo",
        "cifar100-resnet20-cpu",
        "cifar100-wrn-paper",
        "cifar100-resnet56-gpu",
        "sparse-controls",
    } <= set(names)
    for name in names:
        p = get_preset(name)
        assert isinstance(p, Preset) and p.name == name and p.title and len(p.description) > 80
        assert p.configs and preset_configs(name) == p.configs
        for label, c in p.configs.items():
            assert isinstance(c, RunConfig)
            assert label == c.method_label()
            assert RunConfig.from_dict(c.to_dict()) == c
        # configs of one preset differ only in the method settings
        seeds = {c.seed for c in p.configs.values()}
        assert len(seeds) == 1
    with pytest.raises(ValueError, match="cpu-quick-demo"):
        get_preset("nope")


def test_cpu_quick_demo():
    p = get_preset("cpu-quick-demo")
    assert list(p.configs) == ["SGD", "SAM-all", "SAM-ON"]
    for c in p.configs.values():
        assert c.dataset == "synthetic" and c.model == "tiny_resnet" and c.rho is None
    assert p.configs["SAM-all"].resolved_rho() == 0.2
    assert p.configs["SAM-ON"].resolved_rho() == 1.0


def test_paper_preset_matches_the_paper():
    p = get_preset("cifar100-wrn-paper")
    c = p.configs["SAM-ON"]
    assert (c.model, c.dataset, c.epochs, c.batch_size, c.lr, c.lr_schedule) == (
        "wrn28_10",
        "cifar100",
        200,
        128,
        0.1,
        "cosine",
    )
    assert (c.label_smoothing, c.weight_decay, c.momentum) == (0.1, 5e-4, 0.9)
    assert (c.sharpness_rho, c.sharpness_steps, c.sharpness_rho_multi, c.sharpness_multi_steps) == (
        0.01,
        1,
        0.003,
        20,
    )
    assert p.gpu


def test_sparse_controls():
    assert list(preset_configs("sparse-controls")) == [
        "SAM-ON",
        "no-norm",
        "random mask",
        "SAM-all",
    ]


@pytest.mark.parametrize(("name", "augment"), [
    ("cifar100-wrn-paper", "crop_flip"),
    ("variants-gpu", "crop_flip"),
    ("cifar100-wrn-paper-autoaugment", "autoaugment"),
])
def test_paper_presets_follow_the_posters_augmentation_and_offer_the_other(name, augment):
    """The paper presets train with the augmentation the poster's numbers fit (basic crop +
    flip, inferred: the description says so); AutoAugment, as in the authors' published command,
    is its own preset. All: plain fp32 (train.py has no autocast), --normalize_bias for the
    adaptive variants as that command."""
    p = get_preset(name)
    for label, c in p.configs.items():
        assert (c.augment, c.precision) == (augment, "fp32"), label
        assert c.normalize_bias == (c.method == "sam" and c.adaptive != "none"), label
    assert "fp32" in p.description
    if augment == "crop_flip":
        assert "Basic augmentation (random crop + flip)" in p.description
        assert "infers crop + flip" in p.description
        assert "cifar100-wrn-paper-autoaugment" in p.description  # where the other one is
    else:
        assert "authors' published command: AutoAugment" in p.description
        assert "not this preset's reference" in p.description


def test_the_autoaugment_preset_differs_from_the_paper_preset_only_in_augmentation():
    basic, auto = preset_configs("cifar100-wrn-paper"), preset_configs(
        "cifar100-wrn-paper-autoaugment")
    assert list(basic) == list(auto) == ["SGD", "SAM-all", "SAM-ON"]
    for label, c in auto.items():
        assert c.replace(augment="crop_flip") == basic[label], label
        assert c.config_hash() != basic[label].config_hash()


def test_variants_preset_scales_biases_for_asam_only():
    configs = preset_configs("variants-gpu")
    adaptive = [c for c in configs.values() if c.method == "sam" and c.adaptive != "none"]
    assert len(adaptive) == 6 and all(c.normalize_bias for c in adaptive)
    assert not configs["SAM-ON"].normalize_bias and not configs["SGD"].normalize_bias
    assert "normalize_bias" in get_preset("variants-gpu").description


def test_other_presets_keep_their_settings():
    for name in ("cpu-quick-demo", "cifar100-resnet20-cpu", "sparse-controls",
                 "cifar100-resnet56-gpu"):
        for label, c in preset_configs(name).items():
            assert c.augment in ("crop_flip", "flip"), (name, label)
            assert c.precision == "auto" and not c.normalize_bias, (name, label)
