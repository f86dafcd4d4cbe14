"""The trainer end to end on tiny synthetic data (CPU), its checkpoints and its step function."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from support.configs import tiny_config

import samon_core.optim.sam as sam_module
import samon_core.train.setup as train_setup
from samon_core.models import build_model
from samon_core.norms import norm_parameters
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.train.checkpoint import CheckpointRefused, rng_state, set_rng_state
from samon_core.train.setup import allow_tf32, build_run, lr_factor, resolve_precision
from samon_core.train.trainer import train

# The tiny config with both sharpness probes on and a step record at (almost) every step.
PROBED = dict(
    sharpness_samples=128, sharpness_m=64, sharpness_multi_steps=2, log_every_s=0.01, seed=3
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
@pytest.mark.parametrize("method,scope", [("base", "norm"), ("sam", "all"), ("sam", "norm")])
def test_short_run_finishes_with_promised_records(tmp_path, method, scope):
    cfg = tiny_config(method=method, scope=scope, stats_bins=20, **PROBED)
    seen = []
    summary = train(cfg, tmp_path / "run1", callback=seen.append)
    store = RunStore(tmp_path)
    assert summary["state"] == "finished"
    assert store.read_status("run1")["state"] == "finished"
    assert RunConfig.load(tmp_path / "run1" / "config.json") == cfg
    assert (tmp_path / "run1" / "checkpoint.pt").is_file()
    assert store.read_summary("run1") == summary  # total_time_s included
    records = store.read_records("run1")
    assert records == seen  # what the callback saw is what was stored
    kinds = {r["kind"] for r in records}
    assert {"step", "epoch", "sharpness", "norm_stats"} <= kinds
    for r in records:
        assert {"kind", "epoch", "step", "time"} <= set(r)
    step = next(r for r in records if r["kind"] == "step")
    assert {"loss", "acc", "lr", "step_time", "images_per_s"} <= set(step)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:
        assert {"train_loss", "train_ce", "train_acc", "test_loss", "test_ce", "test_acc",
                "epoch_time", "eta_s"} <= set(r)
        assert 0 <= r["test_acc"] <= 1
    assert epochs[-1]["eta_s"] == 0
    gammas = [r for r in records if r["kind"] == "norm_stats" and r["param"] == "gamma"]
    assert [r["epoch"] for r in gammas] == [0, 1, 2]  # epoch 0 = at initialisation
    assert all(r["bin_edges"] == gammas[0]["bin_edges"] for r in gammas)  # fixed bins
    n_gamma = sum(
        p.numel() for _, role, p in norm_parameters(build_model("tiny_resnet")) if role == "gamma"
    )
    last = gammas[-1]
    assert sum(last["counts"]) + last["below"] + last["above"] == n_gamma
    assert summary["precision"] == "fp32"  # resolved on the CPU
    sharp = [r for r in records if r["kind"] == "sharpness"]
    assert {r["steps"] for r in sharp} == {1, 2} and all(math.isfinite(r["value"]) for r in sharp)
    if method == "sam" and scope == "norm":
        assert 0 < summary["perturbed_share"] < 0.05
    if method == "base":
        assert summary["params_perturbed"] == 0


def test_summary_file_carries_total_time(tmp_path):
    summary = train(tiny_config(epochs=1), tmp_path / "r")
    written = RunStore(tmp_path).read_summary("r")
    assert written == summary
    assert written["total_time_s"] >= written["train_time_s"] > 0


@pytest.mark.slow
def test_loss_decreases_on_synthetic(tmp_path):
    train(tiny_config(method="base", epochs=5, train_subset=2500, seed=3), tmp_path / "r")
    ep = RunStore(tmp_path).epochs_df("r")
    assert ep["train_loss"].iloc[-1] < ep["train_loss"].iloc[0]
    assert ep["test_acc"].iloc[-1] > 2 / 100  # well above chance (1%)


def test_sam_on_perturbs_only_norm_parameters(tmp_path, monkeypatch):
    perturbed_sizes = []
    real = sam_module.sam_perturbation

    def spy(weights, grads, **kw):
        perturbed_sizes.append(sorted(tuple(w.shape) for w in weights))
        return real(weights, grads, **kw)

    monkeypatch.setattr(sam_module, "sam_perturbation", spy)
    train(tiny_config(method="sam", scope="norm", epochs=1), tmp_path / "r")
    expected = sorted(tuple(p.shape) for _, _, p in norm_parameters(build_model("tiny_resnet")))
    assert len(perturbed_sizes) == 4 and all(s == expected for s in perturbed_sizes)


@pytest.mark.parametrize("bn_mode,tracked", [("update", 2 + 2 * 2), ("keep", 2 + 2)])
def test_trainer_steps_with_sam_step_and_its_bn_hook(tmp_path, monkeypatch, bn_mode, tracked,
                                                     recwarn):
    """Every SAM step of the trainer is SAM.step (what bench/step_cost.py times) with the fast
    ascent and the config's BatchNorm handling as its second_pass hook; epochs without SAM take
    base steps. 128 images / 64 per step: epoch 1 base (2 BN updates), epoch 2 SAM (2 steps of 2
    forward passes: 4 BN updates with "update", 2 with "keep")."""
    calls = []
    real = sam_module.SAM.step

    def spy(self, closure=None, **kw):
        calls.append((kw.get("fast", True), kw.get("second_pass") is not None))
        return real(self, closure, **kw)

    monkeypatch.setattr(sam_module.SAM, "step", spy)
    cfg = tiny_config(
        method="sam", scope="norm", bn_second_pass=bn_mode, sam_start_epoch=1, train_subset=128
    )
    assert train(cfg, tmp_path / "r")["state"] == "finished"
    assert calls == [(True, True)] * 2
    # the base steps of epoch 1 count as steps for the lr schedule (SAM.base_step)
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    model = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["model"]
    counters = {v.item() for k, v in model.items() if k.endswith("num_batches_tracked")}
    assert counters == {tracked}


@pytest.mark.slow
def test_resume_gives_the_same_next_epoch(tmp_path):
    cfg = tiny_config(method="sam", scope="norm", epochs=3, seed=3)
    train(cfg, tmp_path / "full")

    flag = {"stop": False}
    cb = lambda r: flag.update(stop=flag["stop"] or (r["kind"] == "epoch" and r["epoch"] == 2))  # noqa: E731
    s = train(cfg, tmp_path / "part", callback=cb, should_stop=lambda: flag["stop"])
    store = RunStore(tmp_path)
    assert s["state"] == "cancelled" and store.read_status("part")["state"] == "cancelled"
    s = train(cfg, tmp_path / "part", resume=True)
    assert s["state"] == "finished"
    full, part = store.epochs_df("full"), store.epochs_df("part")
    assert list(part["epoch"]) == [1, 2, 3]  # no epoch twice
    for col in ["train_loss", "train_acc", "test_loss", "test_acc"]:
        assert part[col].tolist() == full[col].tolist(), col
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _plant(path: str) -> None:
    """What a malicious checkpoint would run on an unsafe load: here it leaves a file."""
    with open(path, "w") as f:
        f.write("ran")


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return _plant, (self.marker,)


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    cfg = tiny_config()
    store = RunStore(tmp_path)
    store.create_run(cfg, run_id="r")
    marker = tmp_path / "code_ran"
    ckpt = {"model": {}, "rng": _Payload(marker), "epoch": 1, "step": 4}
    torch.save(ckpt, store.checkpoint_path("r"))
    with pytest.raises(CheckpointRefused, match="refusing to load the checkpoint") as err:
        train(cfg, tmp_path / "r", resume=True)
    assert "_plant" in str(err.value)  # names what it refused
    assert not marker.exists()  # nothing in the file was run
    status = store.read_status("r")
    assert status["state"] == "failed" and "refusing" in status["message"]
    # The payload is live: an unsafe load runs it (so the assertions above can fail).
    torch.load(store.checkpoint_path("r"), weights_only=False)
    assert marker.read_text() == "ran"


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1), random.seed(2), np.random.seed(3)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.standard_normal()
    torch.save(rng_state(), tmp_path / "rng.pt")
    draws = (torch.rand(3), random.random(), random.gauss(0, 1), np.random.standard_normal(2))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), random.random(), random.gauss(0, 1), np.random.standard_normal(2))
    assert torch.equal(draws[0], again[0]) and draws[1:3] == again[1:3]
    assert np.array_equal(draws[3], again[3])


def test_cancel_stops_within_one_step(tmp_path):
    steps = []
    s = train(
        tiny_config(log_every_s=0.01),
        tmp_path / "r",
        callback=steps.append,
        should_stop=lambda: any(r["kind"] == "step" for r in steps),
    )
    assert s["state"] == "cancelled" and "total_time_s" in s
    status = RunStore(tmp_path).read_status("r")
    assert status["state"] == "cancelled"
    first_step = next(r for r in steps if r["kind"] == "step")["step"]
    assert status["step"] == first_step  # stopped at the very next check


def test_nan_loss_ends_as_diverged(tmp_path, monkeypatch):
    real_build = train_setup.build_model

    class Poisoned(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            out = self.inner(x)
            return out * float("nan") if self.calls > 6 else out

    monkeypatch.setattr(train_setup, "build_model", lambda *a, **k: Poisoned(real_build(*a, **k)))
    s = train(tiny_config(method="base", train_subset=512), tmp_path / "r")
    store = RunStore(tmp_path)
    status = store.read_status("r")
    assert s["state"] == "diverged" and status["state"] == "diverged"
    assert status["epoch"] == 1 and status["step"] == 7
    assert "nan" in status["message"]
    assert store.read_summary("r") == s and s["total_time_s"] > 0


def test_bad_setup_marks_run_failed(tmp_path):
    # a batch larger than the training set is now refused by RunConfig itself; a model name
    # missing from the registry still passes validation and fails in the setup
    with pytest.raises(ValueError, match="batch_size"):
        tiny_config(train_subset=32, batch_size=64)
    with pytest.raises(ValueError, match="no_such_model"):
        train(tiny_config(model="no_such_model"), tmp_path / "r")
    status = RunStore(tmp_path).read_status("r")
    assert status["state"] == "failed" and "no_such_model" in status["message"]


# Tiny runs that learn visibly when healthy: 64 images, batches of 16, 4 epochs (16 steps).
LEARNS = dict(train_subset=64, test_subset=64, batch_size=16, epochs=4, augment="none",
              label_smoothing=0.0, method="base")


def test_healthy_run_has_no_loss_warning(tmp_path):
    s = train(tiny_config(**LEARNS), tmp_path / "r")
    assert s["state"] == "finished" and "warning" not in s
    assert RunStore(tmp_path).read_status("r")["message"] == ""


def test_run_whose_loss_never_falls_finishes_with_a_warning(tmp_path):
    s = train(tiny_config(**LEARNS, lr=10.0), tmp_path / "r")  # sits above chance, lr too high
    assert s["state"] == "finished"
    assert s["warning"].startswith("the training loss never fell below its first value")
    assert "learning rate may be too high" in s["warning"]
    store = RunStore(tmp_path)
    assert store.read_status("r")["message"] == s["warning"]
    assert store.read_summary("r")["warning"] == s["warning"]


def test_exploding_loss_ends_as_diverged(tmp_path):
    # AdamW at lr=1 sends the loss far past 10x the chance level ln(100) (but not to inf/nan)
    s = train(tiny_config(**{**LEARNS, "optimizer": "adamw", "lr": 1.0}), tmp_path / "r")
    status = RunStore(tmp_path).read_status("r")
    assert s["state"] == "diverged" and status["state"] == "diverged"
    assert s["diverged_reason"] == "exploded"
    assert "exploded" in status["message"] and "chance level" in status["message"]
    assert status["epoch"] == s["diverged_epoch"] == 1


def _direct_losses(logits: torch.Tensor, y: torch.Tensor, s: float) -> tuple[float, float]:
    """(label-smoothed CE, plain CE), means per image, written out: (1 - s) (-log p_y) +
    s mean_k(-log p_k), and -log p_y."""
    logp = torch.log_softmax(logits.double(), dim=1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    return float(((1 - s) * nll + s * (-logp.mean(1))).mean()), float(nll.mean())


@pytest.mark.parametrize("method", ["base", "sam"])
def test_epoch_losses_match_a_direct_computation(tmp_path, method):
    """train_loss / train_ce: the clean pass's logits of each step (not the perturbed pass's),
    with and without label smoothing; test_loss / test_ce: the final weights on the test set.
    lr 1e-12 keeps the weights at their initial values, so the training batches can be
    recomputed from a fresh build (train-mode BatchNorm does not read its running statistics)."""
    s = 0.2
    cfg = tiny_config(method=method, scope="norm", epochs=1, lr=1e-12, momentum=0.0,
                      weight_decay=0.0, label_smoothing=s, augment="none")
    train(cfg, tmp_path / "r")
    rec = next(r for r in RunStore(tmp_path).read_records("r") if r["kind"] == "epoch")
    fresh = build_run(cfg, tmp_path)
    with torch.no_grad():
        batches = list(fresh.train_loader.epoch_batches(0))
        logits = torch.cat([fresh.model(x) for x, _ in batches])
        y = torch.cat([yb for _, yb in batches])
    train_loss, train_ce = _direct_losses(logits, y, s)
    assert rec["train_loss"] == pytest.approx(train_loss, rel=1e-5)
    assert rec["train_ce"] == pytest.approx(train_ce, rel=1e-5)
    # near the uniform prediction of a fresh net the two are close, yet 50x the tolerance apart
    assert abs(rec["train_loss"] - rec["train_ce"]) > 50 * 1e-5 * train_ce

    trained = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["model"]
    fresh.model.load_state_dict(trained)
    fresh.model.eval()
    with torch.no_grad():
        batches = list(fresh.test_loader.epoch_batches(0))
        logits = torch.cat([fresh.model(x) for x, _ in batches])
        y = torch.cat([yb for _, yb in batches])
    test_loss, test_ce = _direct_losses(logits, y, s)
    assert rec["test_loss"] == pytest.approx(test_loss, rel=1e-5)
    assert rec["test_ce"] == pytest.approx(test_ce, rel=1e-5)
    assert rec["test_acc"] == float((logits.argmax(1) == y).float().mean())
    summary = RunStore(tmp_path).read_summary("r")
    assert (summary["final_test_loss"], summary["final_test_ce"]) == (
        rec["test_loss"], rec["test_ce"])


def test_precision_is_resolved_and_recorded(tmp_path, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device name; no GPU needed
    assert resolve_precision("auto", cpu) == (None, "fp32")
    assert resolve_precision("fp32", cpu) == (None, "fp32")
    assert resolve_precision("bf16", cpu) == (torch.bfloat16, "bf16")
    capability = {"major": 9}  # a stand-in GPU: H100-class, then a pre-Ampere one
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda d=None: (capability["major"], 0))
    assert resolve_precision("auto", cuda) == (torch.bfloat16, "bf16")
    assert resolve_precision("fp32", cuda) == (None, "fp32+tf32")
    capability["major"] = 7  # V100: no TF32 tensor cores, the flags change nothing
    assert resolve_precision("fp32", cuda) == (None, "fp32")
    monkeypatch.undo()
    for precision, expected in (("bf16", "bf16"), ("fp32", "fp32")):
        summary = train(tiny_config(epochs=1, train_subset=128, precision=precision),
                        tmp_path / precision)
        assert summary["precision"] == expected
        assert RunStore(tmp_path).read_summary(precision)["precision"] == expected


def test_tf32_is_allowed_on_cuda_only():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = False
        allow_tf32(torch.device("cpu"))
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)  # CPU runs: untouched
        allow_tf32(torch.device("cuda"))
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def test_lr_schedule_shapes():
    assert lr_factor(0, 100, 0, "cosine") == 1.0
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0)
    assert lr_factor(4, 100, 10, "cosine") == pytest.approx(0.5)  # warm-up is linear
    assert lr_factor(70, 100, 0, "step") == pytest.approx(0.04)
    assert lr_factor(99, 100, 0, "constant") == 1.0
