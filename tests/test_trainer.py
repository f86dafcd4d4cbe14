"""The trainer end to end on tiny synthetic data (CPU)."""

from __future__ import annotations

import math

import pytest
import torch

import samon_core.optim.sam as sam_module
import samon_core.train.trainer as trainer_module
from samon_core.runs.config import RunConfig
from samon_core.models import build_model
from samon_core.norms import norm_parameters
from samon_core.runs.store import RunStore
from samon_core.train.trainer import lr_factor, train

TINY = dict(
    model="tiny_resnet",
    dataset="synthetic",
    train_subset=512,
    test_subset=256,
    epochs=2,
    batch_size=64,
    sharpness_samples=128,
    sharpness_m=64,
    sharpness_multi_steps=2,
    stats_bins=20,
    log_every_s=0.01,
    seed=3,
)


def tiny(**kw) -> RunConfig:
    return RunConfig(**{**TINY, **kw})


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the tests share 2 cores; one thread is also deterministic
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("method,scope", [("base", "norm"), ("sam", "all"), ("sam", "norm")])
def test_short_run_finishes_with_promised_records(tmp_path, method, scope):
    cfg = tiny(method=method, scope=scope)
    seen = []
    summary = train(cfg, tmp_path / "run1", callback=seen.append)
    store = RunStore(tmp_path)
    assert summary["state"] == "finished"
    assert store.read_status("run1")["state"] == "finished"
    assert RunConfig.load(tmp_path / "run1" / "config.json") == cfg
    assert (tmp_path / "run1" / "checkpoint.pt").is_file()
    assert store.read_summary("run1")["final_test_acc"] == summary["final_test_acc"]
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
        assert {"train_loss", "train_acc", "test_loss", "test_acc", "epoch_time", "eta_s"} <= set(r)
        assert 0 <= r["test_acc"] <= 1
    assert epochs[-1]["eta_s"] == 0
    gammas = [r for r in records if r["kind"] == "norm_stats" and r["param"] == "gamma"]
    assert [r["epoch"] for r in gammas] == [0, 1, 2]  # epoch 0 = at initialisation
    assert all(r["bin_edges"] == gammas[0]["bin_edges"] for r in gammas)  # fixed bins
    n_gamma = sum(
        p.numel() for _, role, p in norm_parameters(build_model("tiny_resnet")) if role == "gamma"
    )
    assert sum(gammas[-1]["counts"]) == n_gamma
    sharp = [r for r in records if r["kind"] == "sharpness"]
    assert {r["steps"] for r in sharp} == {1, 2} and all(math.isfinite(r["value"]) for r in sharp)
    if method == "sam" and scope == "norm":
        assert 0 < summary["perturbed_share"] < 0.05
    if method == "base":
        assert summary["params_perturbed"] == 0


def test_loss_decreases_on_synthetic(tmp_path):
    train(tiny(method="base", epochs=5, train_subset=2500, sharpness_samples=0), tmp_path / "r")
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
    train(tiny(method="sam", scope="norm", epochs=1, sharpness_samples=0), tmp_path / "r")
    expected = sorted(tuple(p.shape) for _, _, p in norm_parameters(build_model("tiny_resnet")))
    assert perturbed_sizes and all(s == expected for s in perturbed_sizes)


def test_resume_gives_the_same_next_epoch(tmp_path):
    cfg = tiny(method="sam", scope="norm", epochs=3, sharpness_samples=0)
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


def test_cancel_stops_within_one_step(tmp_path):
    steps = []
    s = train(
        tiny(),
        tmp_path / "r",
        callback=steps.append,
        should_stop=lambda: any(r["kind"] == "step" for r in steps),
    )
    assert s["state"] == "cancelled"
    status = RunStore(tmp_path).read_status("r")
    assert status["state"] == "cancelled"
    first_step = next(r for r in steps if r["kind"] == "step")["step"]
    assert status["step"] == first_step  # stopped at the very next check


def test_nan_loss_ends_as_diverged(tmp_path, monkeypatch):
    real_build = trainer_module.build_model

    class Poisoned(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            out = self.inner(x)
            return out * float("nan") if self.calls > 6 else out

    monkeypatch.setattr(
        trainer_module, "build_model", lambda *a, **k: Poisoned(real_build(*a, **k))
    )
    s = train(tiny(method="base"), tmp_path / "r")
    status = RunStore(tmp_path).read_status("r")
    assert s["state"] == "diverged" and status["state"] == "diverged"
    assert status["epoch"] == 1 and status["step"] == 7
    assert "nan" in status["message"]


def test_bad_setup_marks_run_failed(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        train(tiny(train_subset=32, batch_size=64), tmp_path / "r")
    status = RunStore(tmp_path).read_status("r")
    assert status["state"] == "failed" and "batch_size" in status["message"]


def test_lr_schedule_shapes():
    assert lr_factor(0, 100, 0, "cosine") == 1.0
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0)
    assert lr_factor(4, 100, 10, "cosine") == pytest.approx(0.5)  # warm-up is linear
    assert lr_factor(70, 100, 0, "step") == pytest.approx(0.04)
    assert lr_factor(99, 100, 0, "constant") == 1.0
