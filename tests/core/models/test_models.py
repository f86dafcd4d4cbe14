"""Model zoo: registry, shapes, gradients, norm-layer detection, stages, determinism, autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from samon_core.catalog.stages import stage_index
from samon_core.models import (
    NORM_KINDS,
    build_model,
    list_models,
    make_norm,
    model_info,
    register_model,
)
from samon_core.norms import norm_layers, norm_parameter_ids, norm_parameters

MODELS = list_models()
RESNET_LIKE = [n for n in MODELS if not n.startswith("vit")]
# Models cheap enough for several CPU forward passes per test (everything but the 36M WRN-28-10).
SMALL = [n for n in MODELS if n != "wrn28_10"]

# Parameter counts at 100 classes (default norm; BN/GN/LN all have 2*C parameters).
EXPECTED_PARAMS = {
    "tiny_resnet": 22_924,
    "resnet8": 83_892,
    "resnet20": 278_324,
    "resnet56": 861_620,
    "wrn16_4": 2_772_020,
    "wrn28_10": 36_536_884,
    "vit_tiny": 1_823_908,
}
# Norm layers: ResNet 6n+2 has 1 (stem) + 2 per block + 2 (downsample of stages 2 and 3);
# WRN has 2 per block + final_norm; ViT 2 per block + final_norm.
EXPECTED_NORM_LAYERS = {
    "tiny_resnet": 1 + 3 * 2 + 2,
    "resnet8": 1 + 3 * 2 + 2,
    "resnet20": 19 + 2,
    "resnet56": 1 + 27 * 2 + 2,
    "wrn16_4": 3 * 2 * 2 + 1,
    "wrn28_10": 3 * 4 * 2 + 1,
    "vit_tiny": 6 * 2 + 1,
}
NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def _seeded_build(name: str, seed: int = 0, **kw) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, **kw)


def _meta_build(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return build_model(name, **kw)


def _input(n: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g)


def _norm_choice_cases():
    return [(n, k) for n in MODELS for k in model_info(n)["norm_choices"]]


# ----------------------------------------------------------------------------- registry


def test_registry_lists_the_zoo_sorted():
    assert sorted(EXPECTED_PARAMS) == MODELS
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", MODELS)
def test_model_info(name):
    info = model_info(name)
    assert info["name"] == name
    assert isinstance(info["description"], str) and len(info["description"]) > 20
    assert info["default_norm"] in info["norm_choices"]
    assert isinstance(info["cpu_friendly"], bool)
    assert info["num_params"] == EXPECTED_PARAMS[name]
    assert info["num_norm_layers"] == EXPECTED_NORM_LAYERS[name]
    n_norm = sum(p.numel() for _, _, p in norm_parameters(_meta_build(name)))
    assert info["num_norm_params"] == n_norm
    assert math.isclose(info["norm_param_share"], n_norm / EXPECTED_PARAMS[name])
    assert 0 < info["norm_param_share"] < 0.02  # norm params are a tiny share: the paper's point


def test_model_info_flags_and_choices():
    assert model_info("tiny_resnet")["cpu_friendly"] is True
    assert model_info("resnet20")["cpu_friendly"] is True
    assert model_info("wrn28_10")["cpu_friendly"] is False
    assert model_info("vit_tiny")["norm_choices"] == ["layernorm"]
    for name in RESNET_LIKE:
        assert model_info(name)["default_norm"] == "batchnorm"
        assert set(model_info(name)["norm_choices"]) >= {"batchnorm", "groupnorm"}


def test_unknown_model_name_raises_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="'name'") as exc:
        build_model("resnet18x")
    assert "resnet18x" in str(exc.value)
    for choice in MODELS:
        assert choice in str(exc.value)
    with pytest.raises(ValueError, match="'name'"):
        model_info("nope")


@pytest.mark.parametrize(("name", "norm"), [("vit_tiny", "batchnorm"), ("resnet20", "rmsnorm")])
def test_unsupported_norm_raises_value_error_naming_the_argument(name, norm):
    with pytest.raises(ValueError, match="'norm'") as exc:
        build_model(name, norm=norm)
    assert norm in str(exc.value)
    for choice in model_info(name)["norm_choices"]:
        assert choice in str(exc.value)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes_raises(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        build_model("tiny_resnet", num_classes=num_classes)


def test_register_model_rejects_duplicates_and_names_missing_from_the_catalog():
    """The catalog (samon_core.catalog) describes every model; its own entries are checked in
    test_catalog.py (a bad default_norm fails there, at import)."""
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet20")(lambda **kw: nn.Identity())
    with pytest.raises(ValueError, match="catalog"):
        register_model("never_registered")
    assert "never_registered" not in list_models()


def test_num_classes_sets_the_head():
    model = _meta_build("resnet20", num_classes=10)
    assert model.fc.out_features == 10


# ----------------------------------------------------------------------------- forward / backward


# WRN-28-10's pass is 3 s on a quiet 2-core machine, 24 s on a loaded one: slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "wrn28_10"
                                  else n for n in MODELS])
def test_forward_shape_and_backward_grads(name):
    model = _seeded_build(name)
    model.train()
    out = model(_input())
    assert out.shape == (2, 100)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([3, 97])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), n
    # Norm gammas and betas receive a real (non-zero) gradient signal.
    for layer, role, p in norm_parameters(model):
        assert p.grad.abs().sum() > 0, f"{layer} {role}"


@pytest.mark.parametrize("name", SMALL)
def test_deterministic_given_seed(name):
    a, b, c = _seeded_build(name, 0), _seeded_build(name, 0), _seeded_build(name, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    a.eval()
    b.eval()
    x = _input()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name", SMALL)
def test_channels_last_matches_contiguous(name):
    model = _seeded_build(name).eval()
    x = _input()
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["tiny_resnet", "resnet20", "wrn16_4", "vit_tiny"])
def test_cpu_bf16_autocast_forward_backward(name):
    model = _seeded_build(name).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_input())
        loss = nn.functional.cross_entropy(out.float(), torch.tensor([0, 1]))
    assert out.shape == (2, 100)
    assert torch.isfinite(out.float()).all()
    loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, n
        assert torch.isfinite(p.grad).all(), n


def test_vit_mean_pool_and_input_size_check():
    model = _seeded_build("vit_tiny", pool="mean").eval()
    with torch.no_grad():
        assert model(_input()).shape == (2, 100)
        with pytest.raises(ValueError, match="32x32"):
            model(torch.zeros(1, 3, 16, 16))


def test_wrn_dropout_kwarg():
    model = _meta_build("wrn16_4", dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules())
    assert not any(isinstance(m, nn.Dropout) for m in _meta_build("wrn16_4").modules())


# ----------------------------------------------------------------------------- norm layers


@pytest.mark.parametrize(("name", "norm"), _norm_choice_cases())
def test_norm_parameters_are_exactly_the_norm_modules(name, norm):
    model = _meta_build(name, norm=norm)
    norm_modules = [m for m in model.modules() if isinstance(m, NORM_TYPES)]
    assert len(norm_modules) == EXPECTED_NORM_LAYERS[name]
    expected = {id(p) for m in norm_modules for p in (m.weight, m.bias)}
    assert norm_parameter_ids(model) == expected
    roles = [(layer, role) for layer, role, _ in norm_parameters(model)]
    assert len(roles) == 2 * len(norm_modules)
    assert {r for _, r in roles} == {"gamma", "beta"}
    for m in norm_modules:
        assert m.weight.requires_grad and m.bias.requires_grad
    if norm == "batchnorm":
        assert all(isinstance(m, nn.BatchNorm2d) for m in norm_modules)
    else:
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if norm == "groupnorm":
        assert all(isinstance(m, nn.GroupNorm) and m.num_groups > 1 for m in norm_modules)
    if norm == "layernorm" and name in RESNET_LIKE:
        assert all(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in norm_modules)
    if name == "vit_tiny":
        assert all(isinstance(m, nn.LayerNorm) for m in norm_modules)


def test_resnet20_norm_layer_names():
    names = [n for n, _ in norm_layers(_meta_build("resnet20"))]
    expected = ["norm1"]
    for s in (1, 2, 3):
        for b in range(3):
            expected += [f"stage{s}.{b}.norm1", f"stage{s}.{b}.norm2"]
            if s > 1 and b == 0:
                expected.append(f"stage{s}.0.downsample.1")
    assert sorted(names) == sorted(expected)
    assert len(names) == 21


@pytest.mark.parametrize("name", [n for n in SMALL if n != "resnet56"])
@pytest.mark.parametrize("norm", NORM_KINDS)
def test_norm_init_gamma_one_beta_zero(name, norm):
    if norm not in model_info(name)["norm_choices"]:
        pytest.skip(f"{name} has no {norm}")
    model = _seeded_build(name, norm=norm)
    for layer, role, p in norm_parameters(model):
        assert p.requires_grad
        target = 1.0 if role == "gamma" else 0.0
        assert torch.equal(p.detach(), torch.full_like(p, target)), f"{layer}.{role}"


def test_conv_kaiming_init():
    model = _seeded_build("resnet20")
    w = model.stage3[1].conv2.weight  # 64 -> 64, 3x3: fan_out = 576
    assert abs(w.std().item() - math.sqrt(2.0 / 576)) < 0.1 * math.sqrt(2.0 / 576)
    assert abs(w.mean().item()) < 0.01


def test_groupnorm_group_counts():
    model = _meta_build("resnet20", norm="groupnorm")
    groups = {
        (m.num_groups, m.num_channels) for m in model.modules() if isinstance(m, nn.GroupNorm)
    }
    assert groups == {(8, 16), (8, 32), (8, 64)}
    tiny = _meta_build("tiny_resnet", norm="groupnorm")
    for m in tiny.modules():
        if isinstance(m, nn.GroupNorm):
            assert m.num_channels % m.num_groups == 0
            assert m.num_channels // m.num_groups >= 2


def test_make_norm():
    assert isinstance(make_norm("batchnorm", 16), nn.BatchNorm2d)
    gn = make_norm("groupnorm", 64)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 8
    ln = make_norm("layernorm", 32)
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1
    assert isinstance(make_norm("layernorm", 192, layout="tokens"), nn.LayerNorm)
    with pytest.raises(ValueError, match="not supported"):
        make_norm("batchnorm", 192, layout="tokens")
    with pytest.raises(ValueError, match="norm kind"):
        make_norm("instancenorm", 16)


def test_norm_detection_is_by_type_not_name():
    tv = torchvision.models.resnet18(weights=None, num_classes=10)
    names = {n for n, _ in norm_layers(tv)}
    assert {"bn1", "layer1.0.bn1", "layer2.0.downsample.1", "layer4.0.downsample.1"} <= names
    assert len(names) == 20  # 1 stem + 8 blocks x 2 + 3 downsample
    found = {id(p) for _, _, p in norm_parameters(tv)}
    assert id(tv.layer2[0].downsample[1].weight) in found
    assert id(tv.layer2[0].downsample[0].weight) not in found  # the 1x1 conv

    class Tricky(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn_proj = nn.Conv2d(3, 4, 1)  # named like a norm, is a conv
            self.proj = nn.BatchNorm2d(4)  # named like a conv, is a norm
            self.norm = nn.Linear(4, 4)

    tricky = Tricky()
    assert [n for n, _ in norm_layers(tricky)] == ["proj"]
    assert norm_parameter_ids(tricky) == {id(tricky.proj.weight), id(tricky.proj.bias)}


# ----------------------------------------------------------------------------- stages


def test_stage_index_unit_cases():
    assert stage_index("stage1.0.norm1.weight") == 1
    assert stage_index("stage2.0.downsample.1.bias") == 2
    assert stage_index("stage3.3.conv2.weight") == 3
    assert stage_index("stage3") == 3
    assert stage_index("module.stage2.1.norm2.weight") == 2
    assert stage_index("_orig_mod.stage1.0.norm1.weight") == 1
    for name in (
        "norm1.weight",
        "conv1.weight",
        "fc.bias",
        "final_norm.weight",
        "blocks.0.norm1.weight",
        "layer1.0.bn1.weight",
        "xstage1.weight",
        "stage.weight",
        "stage1x.weight",
        "prefix.stage1.weight",
        "",
    ):
        assert stage_index(name) is None, name


@pytest.mark.parametrize("name", RESNET_LIKE)
def test_resnet_like_models_have_three_stages(name):
    model = _meta_build(name)
    top = dict(model.named_children())
    for s in (1, 2, 3):
        assert isinstance(top[f"stage{s}"], nn.Sequential)
    assert isinstance(top["fc"], nn.Linear)
    per_stage = {None: 0, 1: 0, 2: 0, 3: 0}
    for layer, _ in norm_layers(model):
        per_stage[stage_index(layer)] += 1
    for s in (1, 2, 3):
        assert per_stage[s] > 0
    assert per_stage[None] == 1  # the stem norm (ResNet) or final_norm (WRN)
    assert sum(per_stage.values()) == EXPECTED_NORM_LAYERS[name]


def test_stage_index_on_resnet20_parameter_names():
    model = _meta_build("resnet20")
    counts = {None: 0, 1: 0, 2: 0, 3: 0}
    for layer, _, p in norm_parameters(model):
        counts[stage_index(layer)] += p.numel()
    # stem 16 channels; stage1 6 norms x 16; stage2/3 7 norms x 32 / x 64 (gamma + beta each)
    assert counts == {None: 2 * 16, 1: 2 * 6 * 16, 2: 2 * 7 * 32, 3: 2 * 7 * 64}
    for pname, _ in model.named_parameters():
        s = stage_index(pname)
        assert (s is None) == (pname.split(".")[0] in {"conv1", "norm1", "fc"}), pname
        if s is not None:
            assert pname.startswith(f"stage{s}.")


def test_vit_has_blocks_and_no_stages():
    model = _meta_build("vit_tiny")
    assert len(model.blocks) == 6
    layers = [n for n, _ in norm_layers(model)]
    assert "blocks.0.norm1" in layers and "blocks.5.norm2" in layers and "final_norm" in layers
    assert all(stage_index(n) is None for n, _ in model.named_parameters())


def test_wrn_shortcut_takes_the_block_input_as_the_reference_does():
    """In the SAM-ON reference's WRN the 1x1 shortcut conv acts on x itself, not on
    relu(norm1(x)): changing norm1's gamma must leave the shortcut branch unchanged."""
    from samon_core.models.wide_resnet import PreActBlock

    torch.manual_seed(0)
    block = PreActBlock(8, 16, 2, "batchnorm", 0.0).eval()
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        expected = block.shortcut(x)
        block.conv2.weight.zero_()  # the residual branch contributes nothing
        assert torch.allclose(block(x), expected)
        block.norm1.weight.mul_(3.0)  # would change a shortcut on relu(norm1(x))
        assert torch.allclose(block(x), expected)


def test_wrn_classifier_keeps_pytorchs_default_init_as_the_reference():
    """The reference's WRN (homura's, through the authors' models.py) initialises only its
    convolutions (Kaiming normal, fan_out) and BatchNorm (1, 0); the classifier keeps
    nn.Linear's default: weight and bias uniform in +-1/sqrt(fan_in), so the bias is not 0."""
    model = _seeded_build("wrn16_4")
    bound = 1.0 / math.sqrt(model.fc.in_features)
    for p in (model.fc.weight, model.fc.bias):
        assert float(p.detach().abs().max()) <= bound
    assert float(model.fc.bias.detach().abs().max()) > 0.5 * bound  # drawn, not zeroed
    assert float(model.fc.bias.detach().std()) > 0.3 * bound
