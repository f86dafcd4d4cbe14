"""RunConfig (pydantic v2): validation and its messages, serialisation, overrides, hashing, labels,
field help. No torch. The rho table is tested in test_paper.py, presets in test_presets.py, the time
estimate in test_estimate.py."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys

import pydantic
import pytest
from support.paths import REPO

from samon_core.runs import config as cfgmod
from samon_core.runs.config import (
    CHOICES,
    FIELD_HELP,
    FIELD_NAMES,
    SAM_FIELDS,
    RunConfig,
    field_help,
    field_info,
    parse_field_value,
)

# (field, bad value): every field has at least one entry
BAD_VALUES = [
    ("model", ""),
    ("model", "1abc"),
    ("model", "a b"),
    ("model", 3),
    ("norm_layer", "instancenorm"),
    ("dataset", "imagenet"),
    ("train_subset", -1),
    ("train_subset", 1.5),
    ("train_subset", True),
    ("test_subset", -5),
    ("label_noise", -0.1),
    ("label_noise", 0.95),
    ("data_seed", -1),
    ("data_seed", 2**31),
    ("data_seed", 1.5),
    ("landscape_points", -1),
    ("landscape_points", 102),
    ("landscape_radius", 0.0),
    ("landscape_radius", 11.0),
    ("robustness", "on"),
    ("robustness", True),
    ("robustness_images", 0),
    ("robustness_images", 10_001),
    ("epochs", 0),
    ("epochs", 401),
    ("epochs", "10"),
    ("batch_size", 0),
    ("batch_size", 4097),
    ("optimizer", "adam"),
    ("lr", 0.0),
    ("lr", -0.1),
    ("lr", 10.5),
    ("lr", math.nan),
    ("lr", math.inf),
    ("lr", "0.1"),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("weight_decay", -1e-4),
    ("weight_decay", math.inf),
    ("label_smoothing", 1.0),
    ("label_smoothing", -0.01),
    ("lr_schedule", "linear"),
    ("warmup_epochs", -1),
    ("warmup_epochs", 10),  # == epochs (10)
    ("augment", "mixup"),
    ("method", "asam"),
    ("scope", "everything"),
    ("blocks", (0,)),
    ("blocks", (4,)),
    ("blocks", (1, 1)),
    ("blocks", "1,2"),
    ("blocks", (1.0,)),
    ("adaptive", "yes"),
    ("ball", "l1"),
    ("rho", -0.1),
    ("rho", math.nan),
    ("rho", "auto"),
    ("eta", -0.01),
    ("normalize_bias", 1),
    ("normalize_bias", "true"),
    ("bn_second_pass", "freeze"),
    ("sam_start_epoch", -1),
    ("sam_start_epoch", 10),  # == epochs
    ("sam_end_epoch", 0),
    ("sam_end_epoch", 11),  # > epochs
    ("seed", -1),
    ("seed", 2**31),
    ("device", "gpu"),
    ("device", "cuda:"),
    ("device", "cuda:x"),
    ("precision", "fp16"),
    ("sharpness_every", -1),
    ("sharpness_samples", -1),
    ("sharpness_m", 0),
    ("sharpness_rho", 0.0),
    ("sharpness_rho", 2.0),
    ("sharpness_steps", 0),
    ("sharpness_steps", 51),
    ("sharpness_rho_multi", -0.003),
    ("sharpness_multi_every", -2),
    ("sharpness_multi_steps", -1),
    ("sharpness_multi_steps", 51),
    ("log_every_s", 0.0),
    ("log_every_s", -1.0),
    ("stats_bins", 1),
    ("stats_bins", 0),
    ("sharpness_samples", 100),  # fewer than sharpness_m (128): not one full m-batch
]


def test_bad_value_table_covers_every_field():
    assert {name for name, _ in BAD_VALUES} == set(FIELD_NAMES)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_values_raise_naming_the_field(name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        RunConfig(**{name: value})


def test_defaults_are_valid_and_frozen():
    c = RunConfig()
    assert c.model == "tiny_resnet" and c.method == "sam" and c.scope == "norm"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        c.lr = 0.2  # type: ignore[misc]
    assert c.lr == 0.1
    assert hash(c) == hash(RunConfig())  # frozen and hashable by value


def test_good_edge_values_accepted():
    c = RunConfig(
        epochs=400,
        lr=10,
        momentum=0.0,
        sam_start_epoch=399,
        sam_end_epoch=400,
        device="cuda:1",
        seed=2**31 - 1,
        rho=0,
        blocks=[2, 1],
        warmup_epochs=399,
    )
    assert isinstance(c.lr, float) and c.lr == 10.0  # int accepted and stored as float
    assert c.blocks == (1, 2)  # list -> sorted tuple
    assert c.resolved_rho() == 0.0


def test_blocks_only_with_norm_scope_for_sam():
    with pytest.raises(ValueError, match="blocks"):
        RunConfig(method="sam", scope="all", blocks=(1,))
    # method sgd ignores the SAM fields
    RunConfig(method="base", scope="all", blocks=(1,))


def test_error_message_mentions_range_and_choices():
    with pytest.raises(ValueError, match=r"\[1, 400\]"):
        RunConfig(epochs=0)
    with pytest.raises(ValueError, match="batchnorm, groupnorm, layernorm"):
        RunConfig(norm_layer="x")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "RunConfig.epochs must be an integer in [1, 400]; got 0"),
        ({"lr": 0}, "RunConfig.lr must be a number in (0.0, 10.0]; got 0"),
        ({"momentum": 1.0}, "RunConfig.momentum must be a number in [0.0, 1.0); got 1.0"),
        ({"rho": -1}, "RunConfig.rho must be a number in [0.0, 100.0]; got -1"),
        ({"lr": math.inf}, "RunConfig.lr must be a finite number; got inf"),
        ({"seed": 1.0}, "RunConfig.seed must be an integer; got 1.0"),
        ({"sam_end_epoch": "2"}, "RunConfig.sam_end_epoch must be an integer or None; got '2'"),
        ({"normalize_bias": 1}, "RunConfig.normalize_bias must be true or false; got 1"),
        ({"ball": "l1"}, "RunConfig.ball must be one of l2, linf; got 'l1'"),
        (
            {"device": "gpu"},
            "RunConfig.device must be one of auto, cpu, cuda, cuda:N, mps; got 'gpu'",
        ),
        (
            {"blocks": [3, 0]},
            "RunConfig.blocks must be a list of stage numbers, each in 1..3; got [3, 0]",
        ),
        ({"warmup_epochs": 3, "epochs": 3}, "RunConfig.warmup_epochs must be < epochs (3); got 3"),
    ],
)
def test_error_messages_are_one_line_per_field(changes, message):
    """The app keys its form errors by the 'RunConfig.<field>' a message starts with and shows the
    rest, so the wording is part of the contract (not pydantic's 'Input should be ...')."""
    with pytest.raises(ValueError) as info:
        RunConfig(**changes)
    assert str(info.value) == message


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ValueError) as info:
        RunConfig(epochs=0, lr=-1.0, optimizer="adam")
    lines = str(info.value).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "RunConfig.epochs", "RunConfig.optimizer", "RunConfig.lr"
    ]


def test_constructor_rejects_unknown_fields_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown RunConfig field\(s\): epoch .*epoch -> epochs"):
        RunConfig(epoch=3)


def test_ints_are_stored_as_floats_and_strings_are_not_coerced():
    c = RunConfig(lr=1, rho=2, eta=0)
    assert (type(c.lr), type(c.rho), type(c.eta)) == (float, float, float)
    assert RunConfig(lr=1) == RunConfig(lr=1.0)
    with pytest.raises(ValueError, match="epochs"):
        RunConfig(epochs="3")


def test_pickle_round_trip():
    """Configs cross process boundaries (worker processes, the job queue)."""
    c = RunConfig(blocks=(1, 2), rho=0.3, device="cuda:1")
    assert pickle.loads(pickle.dumps(c)) == c


# --- serialisation ------------------------------------------------------------------------------


def test_dict_and_json_round_trip(tmp_path):
    c = RunConfig(blocks=(1, 3), rho=0.5, sam_end_epoch=8, device="cuda:0", normalize_bias=True)
    d = c.to_dict()
    assert list(d) == list(FIELD_NAMES)
    assert d["blocks"] == [1, 3]
    assert RunConfig.from_dict(d) == c
    assert RunConfig.from_dict(json.loads(c.to_json())) == c
    assert RunConfig.from_json(c.to_json()) == c
    path = c.save(tmp_path)
    assert path == tmp_path / "config.json"
    assert RunConfig.load(tmp_path) == c
    assert RunConfig.load(path) == c
    assert not [p for p in tmp_path.iterdir() if p.name != "config.json"]  # no temp file left


def test_from_dict_missing_keys_take_defaults():
    assert RunConfig.from_dict({"epochs": 3}) == RunConfig(epochs=3)


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match="bogus") as info:
        RunConfig.from_dict({"epochs": 3, "bogus": 1, "learning_rate": 0.1})
    assert "learning_rate" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("epochs", "3"), ("lr", None), ("blocks", 1), ("normalize_bias", "false"), ("seed", 1.0)],
)
def test_from_dict_rejects_wrong_types(key, value):
    with pytest.raises(ValueError, match=key):
        RunConfig.from_dict({key: value})


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ValueError):
        RunConfig.from_dict([("epochs", 3)])  # type: ignore[arg-type]


def test_from_json_malformed():
    with pytest.raises(ValueError):
        RunConfig.from_json("{not json")


def test_legacy_configs_are_upgraded_on_read():
    """Run folders written before the renames: sam_norm -> ball, method sgd -> base."""
    old = {"epochs": 3, "method": "sgd", "sam_norm": "linf"}
    c = RunConfig.from_dict(old)
    assert (c.method, c.ball) == ("base", "linf")
    assert c == RunConfig(epochs=3, method="base", ball="linf")
    assert RunConfig.from_dict({"method": "sam", "sam_norm": "linf"}).ball == "linf"
    with pytest.raises(ValueError, match="sam_norm"):
        RunConfig(sam_norm="l2")  # only reading old files upgrades, not new code


def test_replace_validates_and_rejects_unknown():
    c = RunConfig()
    assert c.replace(epochs=3).epochs == 3
    with pytest.raises(ValueError, match="epochs"):
        c.replace(epochs=-1)
    with pytest.raises(ValueError, match="epoch"):
        c.replace(epoch=3)
    with pytest.raises(ValueError, match="blocks"):
        c.replace(scope="all", blocks=[1])  # cross-field rules run on replace too
    assert c.replace(blocks=[2, 1]).blocks == (1, 2)


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_parse_by_type():
    c = RunConfig().with_overrides(
        [
            "epochs=3",
            "lr=0.05",
            "normalize_bias=true",
            "blocks=1,2",
            "rho=none",
            "sam_end_epoch=2",
            "model=resnet20",
            "device = cuda:0",
        ]
    )
    assert c.epochs == 3 and c.lr == 0.05 and c.normalize_bias is True
    assert c.blocks == (1, 2) and c.rho is None and c.sam_end_epoch == 2
    assert c.model == "resnet20" and c.device == "cuda:0"
    assert (
        RunConfig(normalize_bias=True).with_overrides(["normalize_bias=False"]).normalize_bias
        is False
    )
    assert RunConfig(blocks=(1,)).with_overrides(["blocks="]).blocks == ()
    assert RunConfig().with_overrides(["blocks=[3]"]).blocks == (3,)
    assert RunConfig().with_overrides(["rho=0.3"]).rho == 0.3
    assert RunConfig().with_overrides("epochs=4").epochs == 4
    # later wins
    assert RunConfig().with_overrides(["epochs=4", "epochs=5"]).epochs == 5


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("epochs", "key=value"),
        ("epochs=three", "epochs"),
        ("epochs=3.5", "epochs"),
        ("lr=fast", "lr"),
        ("normalize_bias=maybe", "normalize_bias"),
        ("blocks=1,x", "blocks"),
        ("blocks=4", "blocks"),
        ("nonsense=1", "nonsense"),
        ("epochs=__import__('os')", "epochs"),
        ("sam_end_epoch=nope", "sam_end_epoch"),
        ("epochs=0", "epochs"),
    ],
)
def test_override_errors(item, needle):
    with pytest.raises(ValueError, match=needle):
        RunConfig().with_overrides([item])


def test_parse_field_value_unknown_field():
    with pytest.raises(ValueError, match="did you mean"):
        parse_field_value("epoch", "3")


# --- hash and labels ----------------------------------------------------------------------------


def test_config_hash_stable_and_sensitive():
    c = RunConfig()
    h = c.config_hash()
    assert len(h) == 64 and h == RunConfig().config_hash()
    assert RunConfig.from_dict(json.loads(c.to_json())).config_hash() == h
    assert c.replace(seed=1).config_hash() != h
    assert c.replace(lr=0.05).config_hash() != h
    assert c.replace(scope="all").config_hash() != h
    assert c.replace(blocks=(1,)).config_hash() != h
    # equivalent configs hash equally
    assert c.replace(rho=1.0).config_hash() == h  # rho None resolves to 1.0 for SAM-ON
    assert c.replace(sam_end_epoch=c.epochs).config_hash() == h
    assert c.replace(eta=0.5).config_hash() == h  # eta unused by plain SAM
    sgd = c.replace(method="base")
    assert sgd.replace(scope="all", rho=3.0).config_hash() == sgd.config_hash()
    assert sgd.config_hash() != h
    assert (
        c.replace(adaptive="elementwise").config_hash()
        != c.replace(adaptive="elementwise", eta=0.1).config_hash()
    )


def test_config_hash_pinned():
    """The hash of the defaults must not change by accident: finished runs are reused by it. If a
    change of RunConfig's defaults or of the canonical form is intended, bump HASH_SCHEMA (when
    the meaning of stored configs changes) and update this value."""
    # 3: the records measure as the paper does (fidelity); 4: the sharpness probe on clean
    # labels, the WRN's fc bias initialised as the reference's
    assert cfgmod.HASH_SCHEMA == 4
    expected = "326c556d1feb5ea9838d023f59627d524ab42ae64f005d2fee00b6a8d886f2ae"
    assert RunConfig().config_hash() == expected


@pytest.mark.parametrize(
    ("changes", "label"),
    [
        ({"method": "base"}, "SGD"),
        ({"method": "base", "optimizer": "adamw"}, "AdamW"),
        ({"scope": "all"}, "SAM-all"),
        ({"scope": "norm"}, "SAM-ON"),
        ({"scope": "no-norm"}, "no-norm"),
        ({"scope": "random"}, "random mask"),
        ({"scope": "norm", "blocks": (1, 2)}, "SAM-ON (B1,B2)"),
        ({"scope": "norm", "adaptive": "elementwise"}, "SAM-ON (ASAM elementwise)"),
        ({"scope": "all", "adaptive": "layerwise"}, "SAM-all (ASAM layerwise)"),
        ({"scope": "all", "ball": "linf"}, "SAM-all (p=inf)"),
        (
            {"scope": "norm", "adaptive": "elementwise", "ball": "linf"},
            "SAM-ON (p=inf elementwise)",
        ),
        (
            {"scope": "norm", "blocks": (3,), "adaptive": "elementwise"},
            "SAM-ON (B3; ASAM elementwise)",
        ),
        ({"scope": "norm", "optimizer": "lion"}, "SAM-ON (Lion)"),
        ({"scope": "norm", "sam_start_epoch": 2}, "SAM-ON (SAM epochs 2-10)"),
    ],
)
def test_method_label(changes, label):
    assert RunConfig(**changes).method_label() == label


# --- help, choices, estimate --------------------------------------------------------------------


def test_every_field_has_help_and_enum_choices():
    for name in FIELD_NAMES:
        assert field_help(name) == FIELD_HELP[name]
        assert len(FIELD_HELP[name]) > 15
        info = field_info(name)
        assert info["help"] == FIELD_HELP[name]
    for name, choices in CHOICES.items():
        assert getattr(RunConfig(), name) in choices
        for choice in choices:
            assert getattr(RunConfig(**{name: choice}), name) == choice
    assert set(CHOICES) >= {
        "norm_layer",
        "dataset",
        "optimizer",
        "lr_schedule",
        "augment",
        "method",
        "scope",
        "adaptive",
        "ball",
        "bn_second_pass",
        "device",
        "precision",
    }
    assert field_info("epochs")["ge"] == 1 and field_info("epochs")["le"] == 400
    with pytest.raises(ValueError):
        field_help("nope")


def test_field_info_reads_the_declarations():
    assert field_info("rho") == {
        "name": "rho", "type": "float", "optional": True, "default": None,
        "help": FIELD_HELP["rho"], "choices": None, "sam_only": True, "ge": 0.0,
        "le": 100.0,
    }
    assert field_info("blocks")["default"] == [] and field_info("blocks")["type"] == "tuple"
    assert (field_info("blocks")["item_ge"], field_info("blocks")["item_le"]) == (1, 3)
    assert field_info("lr")["gt"] == 0.0 and "ge" not in field_info("lr")
    assert field_info("scope")["choices"] == ("all", "norm", "no-norm", "random")
    assert field_info("device")["choices"] == ("auto", "cpu", "cuda", "mps")
    assert set(SAM_FIELDS) == {
        "scope", "blocks", "adaptive", "ball", "rho", "eta", "normalize_bias",
        "bn_second_pass", "sam_start_epoch", "sam_end_epoch",
    }


def test_field_help_quotes_the_paper_module():
    from samon_core import paper

    assert f"paper: {paper.SHARPNESS_PROBE['sharpness_m']}" in FIELD_HELP["sharpness_m"]
    assert str(paper.SHARPNESS_RHOS_MULTI[1]) in FIELD_HELP["sharpness_rho_multi"]


# --- import weight ------------------------------------------------------------------------------


def test_light_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import samon_core.runs.config, samon_core.runs.presets, samon_core.runs.store\n"
        "import samon_core.catalog, samon_core.paper, samon_core.runs.estimate\n"
        "import samon_core.runs.config as c; c.RunConfig().config_hash()\n"
        "import samon_core.runs.presets as p; [p.get_preset(n) for n in p.list_presets()]\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'streamlit') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_augment_offers_autoaugment_and_precision_help_names_tf32():
    assert CHOICES["augment"] == ("crop_flip", "flip", "none", "autoaugment")
    assert RunConfig(augment="autoaugment").augment == "autoaugment"
    assert RunConfig().augment == "crop_flip"  # the default is unchanged
    assert "AutoAugment" in FIELD_HELP["augment"] and "TF32" in FIELD_HELP["precision"]
    # an AutoAugment run is never reused for a crop + flip request
    assert RunConfig(augment="autoaugment").config_hash() != RunConfig().config_hash()


def test_asam_defaults_are_the_references():
    """The authors' train.py: --eta 0.0 (overriding its class default 0.01), normalize_bias off
    unless passed (the paper presets pass it for ASAM, see test_presets.py)."""
    c = RunConfig()
    assert c.eta == 0.0 and c.normalize_bias is False


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"epochs": 0}, "epochs"),
        ({"scope": "bogus"}, "scope"),
        ({"epochs": 3, "warmup_epochs": 3}, "warmup_epochs"),
        ({"sharpness_samples": 10, "sharpness_m": 64}, "sharpness_samples"),
        ({"dataset": "cifar10", "train_subset": 60_000}, "train_subset"),
        ({"train_subset": 100, "batch_size": 128}, "batch_size"),
        ({"scope": "all", "blocks": (1,)}, "blocks"),
    ],
)
def test_config_errors_name_the_field_to_change(kwargs, field):
    """A form puts each message next to its widget: the error carries the field, also for the
    rules between fields (no parsing of the message)."""
    from samon_core.runs.fieldspec import ConfigError

    with pytest.raises(ConfigError) as info:
        RunConfig(**kwargs)
    assert info.value.fields == (field,)
    assert isinstance(info.value, ValueError) and str(info.value).startswith(f"RunConfig.{field}")


def test_config_error_lists_every_bad_field_with_its_message():
    from samon_core.runs.fieldspec import ConfigError

    with pytest.raises(ConfigError) as info:
        RunConfig(epochs=0, lr=-1.0, bogus=1)
    fields = [f for f, _ in info.value.errors]
    assert fields == ["epochs", "lr", ""] and len(str(info.value).splitlines()) == 3
