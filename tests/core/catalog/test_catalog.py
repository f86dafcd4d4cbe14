"""The torch-free catalog (samon_core.catalog) against what it describes: the model registry (built
on the meta device, so even WRN-28-10 costs nothing), the datasets, and RunConfig's choices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from samon_core.catalog import DATASET_SIZES, DATASETS, MODELS, ModelSpec, model_spec
from samon_core.catalog.choices import NORM_KINDS
from samon_core.runs.config import CHOICES, RunConfig


def test_catalog_is_the_registry():
    """Every registered model is in the catalog and vice versa, with the same description, norm
    choices, default norm, CPU flag and (counted on a meta-device build) parameter count."""
    from samon_core.models import list_models, model_info

    assert set(MODELS) == set(list_models())
    for name, spec in MODELS.items():
        info = model_info(name)
        assert info["description"] == spec.description, name
        assert info["norm_choices"] == list(spec.norms), name
        assert info["default_norm"] == spec.default_norm, name
        assert info["cpu_friendly"] is spec.cpu_friendly, name
        assert info["num_params"] == spec.num_params, name


def test_norm_kinds_are_the_config_choices_and_the_layer_factory_kinds():
    from samon_core.models import NORM_KINDS as FACTORY_KINDS

    assert NORM_KINDS == CHOICES["norm_layer"] == FACTORY_KINDS


def test_datasets_are_the_config_choices_and_match_the_loaders():
    from samon_core.train.data import cifar, synthetic

    assert set(DATASETS) == set(CHOICES["dataset"])
    for name in ("synthetic", "synthetic10"):
        assert DATASET_SIZES[name] == (synthetic.SYNTHETIC_TRAIN, synthetic.SYNTHETIC_TEST)
    for name in ("cifar10", "cifar100"):
        assert DATASETS[name].num_classes == cifar.CIFAR_SPECS[name].num_classes, name
    assert DATASET_SIZES["cifar100"] == (50_000, 10_000)


def test_every_catalog_model_is_a_valid_config_value():
    for name, spec in MODELS.items():
        for norm in spec.norms:
            assert RunConfig(model=name, norm_layer=norm).model == name


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"default_norm": "groupnorm", "norms": ("batchnorm",)}, "default_norm"),
        ({"norms": ()}, "norms"),
        ({"norms": ("instancenorm",), "default_norm": "instancenorm"}, "norms"),
        ({"num_params": 0}, "positive"),
        ({"cpu_s_per_image": -1.0}, "positive"),
    ],
)
def test_a_bad_entry_fails_at_import(changes, needle):
    with pytest.raises(ValueError, match=needle):
        dataclasses.replace(MODELS["resnet20"], **changes)


def test_model_spec_lookup():
    assert isinstance(model_spec("vit_tiny"), ModelSpec)
    assert model_spec("vit_tiny").norms == ("layernorm",)
    with pytest.raises(ValueError, match="tiny_resnet"):
        model_spec("resnet18")


# --- method families (one MethodSpec per family) ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "changes", "needle"),
    [
        ("no-norm", {"rho_like": "base"}, "rho_like"),  # the base family has no rho
        ("no-norm", {"rho_like": "ssam"}, "rho_like"),
        ("random", {"form_key": ""}, "form_key"),
        ("random", {"form_key": "rho_norm"}, "unique"),
        ("base", {"step_cost_f": 0.0}, "step_cost_f"),
    ],
)
def test_a_bad_method_family_fails_the_catalog_check(key, changes, needle):
    from samon_core.catalog import methods

    families = tuple(dataclasses.replace(m, **changes) if m.key == key else m
                     for m in methods.FAMILIES)
    with pytest.raises(ValueError, match=needle):
        methods._check(families)


def test_the_scope_choices_are_the_sam_families():
    from samon_core.catalog import methods

    assert CHOICES["scope"] == ("all", "norm", "no-norm", "random")
    for scope in CHOICES["scope"]:
        config = RunConfig(method="sam", scope=scope)
        assert methods.BY_KEY[methods.method_key(config)].scope == scope
        assert config.method_label().startswith(methods.BY_SCOPE[scope].name)


# --- where the datasets live ----------------------------------------------------------------------


def test_data_dir_takes_the_given_folder_then_the_environment_then_data(monkeypatch, tmp_path):
    from samon_core.catalog.datasets import DATA_DIR_ENV, data_dir

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert data_dir() == Path("data")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_dir("~/cifar") == tmp_path / "cifar"


@pytest.mark.parametrize("name", ["cifar100", "cifar10"])
def test_the_cifar_layout_is_what_the_fake_writer_writes_and_the_loader_reads(name, tmp_path):
    from support.cifar import write_cifar_like

    from samon_core.catalog.datasets import CIFAR_LAYOUT
    from samon_core.train.data.cifar import load_cifar

    write_cifar_like(tmp_path, name, n_train=20, n_test=10)
    layout = CIFAR_LAYOUT[name]
    written = {p.name for p in (tmp_path / layout.folder).iterdir()}
    assert written == set(layout.files)
    assert len(load_cifar(name, tmp_path, download=False).test_y) == 10
