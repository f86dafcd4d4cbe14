"""samon_core.train.robustness: PGD against a hand-written reference, the ball and the pixel range,
eps = 0, the model's mode, the corruptions; the trainer's record and ``samon robustness RUN``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from samon_core.catalog import robustness as suite
from samon_core.catalog.robustness import Budget
from samon_core.train.robustness import (
    corrupt,
    evaluate_robustness,
    gaussian_blur,
    normalized_forward,
    pgd_path,
    pgd_robust,
    random_start,
    step_size,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def _linear(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).to(dtype)


def _images(n: int = 8, dtype=torch.float64, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    # a third of the pixels at 0 or 1, so that the clip to the pixel range has work to do
    x = torch.rand(n, 3, 4, 4, generator=g, dtype=torch.float64)
    x = torch.where(x < 0.15, 0.0, torch.where(x > 0.85, 1.0, x))
    return x.to(dtype), torch.randint(0, 5, (n,), generator=g)


def _reference_path(model: nn.Module, x, y, delta0, *, norm, eps, alpha, steps):
    """Textbook PGD, one image at a time, the gradient of the linear model written out by hand:
    logits = W z + b with z = (x + d - mu) / sigma, dCE/dd = (W^T (softmax - onehot)) / sigma."""
    w, b = model[1].weight.detach(), model[1].bias.detach()
    sigma = torch.tensor(STD, dtype=x.dtype).view(3, 1, 1).expand(3, 4, 4).flatten()
    mu = torch.tensor(MEAN, dtype=x.dtype).view(3, 1, 1).expand(3, 4, 4).flatten()
    paths, bound = [], {"projection": 0, "clip": 0}  # how often each was active
    for i in range(len(y)):
        xi, d = x[i].flatten(), delta0[i].flatten().clone()
        path = [d.clone()]
        for _ in range(steps):
            p = torch.softmax(w @ ((xi + d - mu) / sigma) + b, 0)
            p[y[i]] -= 1.0
            g = (w.T @ p) / sigma
            if norm == "linf":
                sign = [(float(gj) > 0) - (float(gj) < 0) for gj in g]
                moved = [float(d[j]) + alpha * sign[j] for j in range(len(d))]
                bound["projection"] += sum(abs(m) > eps for m in moved)
                d = torch.tensor([min(max(m, -eps), eps) for m in moved], dtype=x.dtype)
            else:
                d = d + alpha * g / math.sqrt(float((g * g).sum()))
                n = math.sqrt(float((d * d).sum()))
                if n > eps:
                    bound["projection"] += 1
                    d = d * (eps / n)
            inside = [float(xi[j] + d[j]) for j in range(len(d))]
            bound["clip"] += sum(not 0.0 <= v <= 1.0 for v in inside)
            d = torch.tensor([min(max(v, 0.0), 1.0) - float(xi[j])
                              for j, v in enumerate(inside)], dtype=x.dtype)
            path.append(d.clone())
        paths.append(torch.stack(path))
    return torch.stack(paths, dim=1), bound  # (steps + 1, B, n)


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.5)])
def test_pgd_iterates_equal_a_reference_loop_in_float64(norm, eps):
    model, (x, y) = _linear(), _images()
    forward = normalized_forward(model, MEAN, STD, x)
    delta0 = random_start(x, eps, norm, torch.Generator().manual_seed(3))
    steps, alpha = 6, step_size(eps, 6)
    ours = torch.stack([d.flatten(1) for d, _ in pgd_path(forward, x, y, delta0, norm=norm,
                                                          eps=eps, alpha=alpha, steps=steps)])
    ref, bound = _reference_path(model, x, y, delta0, norm=norm, eps=eps, alpha=alpha,
                                 steps=steps)
    assert ours.dtype == torch.float64 and ours.shape == ref.shape
    assert torch.allclose(ours, ref, rtol=0, atol=1e-10)
    # the test exercises the projection and the clip: both bind somewhere along the path
    assert bound["projection"] > 0 and bound["clip"] > 0
    assert not torch.equal(ours[-1], ours[0])  # it moved


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_iterate_stays_in_the_ball_and_the_pixel_range(norm):
    model, (x, y) = _linear(dtype=torch.float32), _images(32, torch.float32)
    forward = normalized_forward(model, MEAN, STD, x)
    eps = 8 / 255 if norm == "linf" else 0.5
    delta0 = random_start(x, eps, norm, torch.Generator().manual_seed(0))
    for d, _ in pgd_path(forward, x, y, delta0, norm=norm, eps=eps, alpha=step_size(eps, 5),
                         steps=5):
        size = d.flatten(1).abs().amax(1) if norm == "linf" else d.flatten(1).norm(dim=1)
        assert (size <= eps * (1 + 1e-5)).all()
        assert ((x + d) >= 0).all() and ((x + d) <= 1).all()


def test_robust_means_correct_unperturbed_and_at_every_iterate():
    """Images leave the batch once misclassified; the answer is the one over all of them."""
    model, (x, y) = _linear(seed=2), _images(64, seed=5)
    forward = normalized_forward(model, MEAN, STD, x)
    for norm, eps in (("linf", 0.05), ("l2", 0.4)):
        alpha = step_size(eps, 8)
        got = pgd_robust(forward, x, y, norm=norm, eps=eps, steps=8,
                         generator=torch.Generator().manual_seed(4))
        delta0 = random_start(x, eps, norm, torch.Generator().manual_seed(4))
        want = forward(x).argmax(1) == y
        for _, logits in pgd_path(forward, x, y, delta0, norm=norm, eps=eps, alpha=alpha,
                                  steps=8):
            want &= logits.argmax(1) == y
        assert torch.equal(got, want)
        clean = int((forward(x).argmax(1) == y).sum())
        assert 0 < int(got.sum()) < clean  # some images fall, some stand: the test can fail


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4))
    net.train()
    with torch.no_grad():
        net(torch.rand(64, 3, 8, 8) * 2)  # running statistics that differ from a batch's
    return net


def test_eps_zero_leaves_the_accuracy_unchanged_and_the_model_as_it_was():
    net = _conv_net()
    x = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = normalized_forward(net.eval(), MEAN, STD, x)(x).argmax(1)
    y[::3] = (y[::3] + 1) % 4  # a third wrong: clean accuracy about 2/3
    net.train()
    net[0].bias.requires_grad_(False)  # a frozen parameter stays frozen
    net[5].weight.grad = torch.full_like(net[5].weight, 7.0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    zero = (Budget("linf", 0.0, "0", False), Budget("l2", 0.0, "0", False))
    out = evaluate_robustness(net, x, y, mean=MEAN, std=STD, attacks=(*zero, *suite.ATTACKS),
                              corruptions={})
    with torch.no_grad():  # eval mode: BatchNorm's running statistics
        expected = float((net.eval()(((x - torch.tensor(MEAN).view(1, 3, 1, 1))
                                      / torch.tensor(STD).view(1, 3, 1, 1))).argmax(1) == y)
                               .float().mean())
    net.train()
    assert out["clean_acc"] == pytest.approx(expected, abs=1e-12) and 0.4 < expected < 0.9
    assert [a["acc"] for a in out["attacks"][:2]] == [out["clean_acc"]] * 2  # exactly
    assert all(a["acc"] <= out["clean_acc"] for a in out["attacks"])
    assert out["attacks"][-1]["acc"] < out["clean_acc"]  # l2 0.5 fools it somewhere
    assert net.training and not net[0].bias.requires_grad and net[0].weight.requires_grad
    assert torch.equal(net[5].weight.grad, torch.full_like(net[5].weight, 7.0))
    after = net.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # running stats untouched
    assert out["images"] == 40 and out["pgd_steps"] == suite.PGD_STEPS


def test_the_same_seed_gives_the_same_result():
    net = _conv_net().eval()
    x = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(2))
    a = evaluate_robustness(net, x, y, mean=MEAN, std=STD, steps=3)
    b = evaluate_robustness(net, x, y, mean=MEAN, std=STD, steps=3, batch_size=7)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in (a, b)]
    assert strip[0] == strip[1]  # batches change nothing either: each image is its own


def _pixels(n: int = 6, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 255.0


def test_corruptions_at_their_identity_level_leave_images_unchanged():
    x = _pixels()
    for name, level in suite.IDENTITY_LEVEL.items():
        assert torch.equal(corrupt(x, name, level, torch.Generator().manual_seed(0)), x), name


@pytest.mark.parametrize("name", list(suite.CORRUPTIONS))
def test_each_severity_corrupts_more_than_the_one_before(name):
    x = _pixels()
    errors = [float(((corrupt(x, name, level, torch.Generator().manual_seed(0)) - x) ** 2)
                    .mean()) for level in suite.CORRUPTIONS[name]]
    assert 0 < errors[0] < errors[1] < errors[2]
    out = corrupt(x, name, suite.CORRUPTIONS[name][2], torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())  # 8-bit images, as CIFAR-10-C


def test_blur_is_scikit_images_gaussian_as_cifar_10_c_calls_it():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _pixels(2)
    for sigma in suite.CORRUPTIONS["gaussian_blur"]:
        ref = torch.from_numpy(ndimage.gaussian_filter(x.double().numpy(),
                                                       sigma=(0, 0, sigma, sigma),
                                                       mode="nearest", truncate=4.0))
        ref = (ref.clamp(0, 1) * 255).round() / 255
        assert (gaussian_blur(x.double(), sigma) - ref).abs().max() <= 1 / 255 + 1e-9
        assert (gaussian_blur(x.double(), sigma) != ref).float().mean() < 0.01  # rounding ties


def test_unknown_norm_or_corruption_is_a_clear_error():
    x = _pixels(1)
    with pytest.raises(ValueError, match="'linf' or 'l2'"):
        random_start(x, 0.1, "l1", torch.Generator())
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corrupt(x, "fog", 1.0, torch.Generator())


# ---------------------------------------------------------------------------------------------
# the trainer's record and the CLI on a finished run
# ---------------------------------------------------------------------------------------------


def _check_result(result: dict, images: int) -> None:
    assert result["suite"] == "standard" and result["images"] == images
    assert [(a["norm"], a["label"]) for a in result["attacks"]] == [
        (b.norm, b.label) for b in suite.ATTACKS]
    assert len(result["corruptions"]) == sum(len(v) for v in suite.CORRUPTIONS.values())
    accs = [result["clean_acc"], *(a["acc"] for a in result["attacks"])]
    assert all(0.0 <= a <= 1.0 for a in accs)
    assert all(a["acc"] <= result["clean_acc"] for a in result["attacks"])


def test_a_one_epoch_run_records_its_robustness(tmp_path):
    from support.configs import tiny_config

    from samon_core.train.trainer import train

    summary = train(tiny_config(epochs=1, robustness="standard", robustness_images=48),
                    tmp_path / "r")
    _check_result(summary["robustness"], 48)
    stored = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert stored["robustness"] == json.loads(json.dumps(summary["robustness"]))
    recs = [json.loads(s) for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    (rec,) = [r for r in recs if r["kind"] == "robustness"]
    assert rec["epoch"] == 1 and rec["step"] == stored["steps"]
    assert {k: v for k, v in rec.items() if k not in ("kind", "epoch", "step", "time")} == \
        stored["robustness"]
    assert recs[-1]["kind"] == "robustness"  # after the last epoch's records


@pytest.mark.slow  # trains a real run, then attacks it: 16 s on the shared 2-core machine
def test_cli_measures_a_finished_run_for_its_requester_or_the_teacher(tmp_path, capsys,
                                                                      clean_env):
    from support.configs import tiny_config
    from support.teacher import TEACHER_TOKEN

    from samon_core import service
    from samon_core.cli import main
    from samon_core.runs.store import RunStore
    from samon_core.service.settings import load_settings

    clean_env.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    store = RunStore(tmp_path / "runs")
    s = load_settings()
    key = {n: service.register_owner(n, store=store, settings=s) for n in ("ann", "mallory")}
    rid = service.submit(tiny_config(epochs=1), owner="ann", owner_key=key["ann"], store=store,
                         settings=s)
    base = ["robustness", rid, "--images", "32", "--runs-dir", str(store.root)]
    capsys.readouterr()
    assert main(base) == 2 and "robustness needs --owner-key" in capsys.readouterr().err
    assert main([*base, "--owner-key", key["mallory"]]) == 2
    err = capsys.readouterr().err
    assert "did not request" in err and key["mallory"] not in err
    assert main([*base, "--owner-key", key["ann"]]) == 2  # queued, not finished
    assert "has not finished" in capsys.readouterr().err

    from samon_core.train.trainer import train

    train(store.read_config(rid), store.run_dir(rid))
    assert "robustness" not in store.read_summary(rid)  # trained with robustness off
    assert main([*base, "--owner-key", key["ann"]]) == 0
    out = capsys.readouterr().out
    assert f"{rid}: robustness added" in out and "l∞ PGD: eps 0.25/255" in out
    _check_result(store.read_summary(rid)["robustness"], 32)
    recs = [r for r in store.read_records(rid) if r["kind"] == "robustness"]
    assert len(recs) == 1 and recs[0]["clean_acc"] == store.read_summary(rid)["robustness"][
        "clean_acc"]
    assert main(["robustness", rid, "--images", "0", "--owner", "teacher",
                 "--runs-dir", str(store.root)]) == 2
    assert main(["robustness", "nope", "--owner", "teacher", "--runs-dir", str(store.root)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_robustness_command_prints_its_help(capsys):
    from samon_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["robustness", "--help"])
    assert exc.value.code == 0 and "--owner-key" in capsys.readouterr().out


def test_the_field_is_off_by_default_without_changing_old_hashes_and_on_in_the_presets():
    from samon_core.runs.config import RunConfig
    from samon_core.runs.presets import get_preset, list_presets

    c = RunConfig()
    assert c.robustness == "off" and "robustness" not in c.canonical_dict()
    assert c.replace(robustness_images=64).config_hash() == c.config_hash()  # unused when off
    on = c.replace(robustness="standard")
    assert on.config_hash() != c.config_hash()
    assert on.replace(robustness_images=64).config_hash() != on.config_hash()
    # a config.json written before the field existed reads as "off": nothing was measured
    old = {k: v for k, v in c.to_dict().items() if not k.startswith("robustness")}
    assert RunConfig.from_dict(old).robustness == "off"
    on_in = {name for name in list_presets()
             if all(cfg.robustness == "standard" for cfg in get_preset(name).configs.values())}
    assert {"cpu-quick-demo", "sparse-controls", "cifar100-resnet20-cpu",
            "cifar100-resnet56-gpu", "variants-gpu"} <= on_in
