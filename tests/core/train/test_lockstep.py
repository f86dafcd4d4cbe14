"""Lockstep groups: runs trained interleaved equal the same runs trained alone, bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from support.configs import tiny_config

from samon_core.runs.store import RunStore
from samon_core.train.lockstep import GroupJob, RngSlot, train_group
from samon_core.train.trainer import train

TIMING = {"time", "step_time", "images_per_s", "load", "epoch_time", "eta_s"}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic kernels, and the tests share 2 cores
    yield
    torch.set_num_threads(n)


def _records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _weights(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    return ckpt["model"]


def _configs():
    # log_every_s tiny: a step record after every step, alone and in the group alike
    common = dict(epochs=2, log_every_s=1e-9, sharpness_samples=64, sharpness_m=32, seed=5,
                  augment="crop_flip")
    return {
        "base": tiny_config(method="base", **common),
        "sam-all": tiny_config(method="sam", scope="all", **common),
        "sam-on": tiny_config(method="sam", scope="norm", **common),
    }


@pytest.mark.slow
def test_a_lockstep_group_gives_each_run_the_records_it_gets_alone(tmp_path):
    configs = _configs()
    alone, group = tmp_path / "alone", tmp_path / "group"
    for name, cfg in configs.items():
        train(cfg, alone / name)
    order = []  # the group really interleaves: steps alternate between runs
    jobs = [GroupJob(cfg, group / name, callback=lambda r, n=name: order.append((n, r["kind"])))
            for name, cfg in configs.items()]
    summaries = train_group(jobs)

    assert [s["state"] for s in summaries] == ["finished"] * 3
    assert summaries[0]["lockstep"] == list(configs)
    steps = [n for n, kind in order if kind == "step"]
    assert steps[:3] == list(configs)  # one step of each in turn, not one run after the other
    for name in configs:
        assert _records(group / name) == _records(alone / name), name
        a, g = _weights(alone / name), _weights(group / name)
        assert all(torch.equal(a[k], g[k]) for k in a), name
        solo = json.loads((alone / name / "summary.json").read_text())
        assert "lockstep" not in solo


def test_a_failing_run_leaves_the_group_and_the_others_finish(tmp_path):
    good = tiny_config(epochs=1)
    bad = tiny_config(epochs=1, model="no_such_model")
    summaries = train_group([GroupJob(good, tmp_path / "a"), GroupJob(bad, tmp_path / "b")])
    assert summaries[0]["state"] == "finished"
    assert summaries[1]["state"] == "failed" and "no_such_model" in summaries[1]["error"]
    store = RunStore(tmp_path)
    assert store.read_status("b")["state"] == "failed"
    assert store.read_status("a")["state"] == "finished"


def test_cancel_stops_one_run_of_the_group_only(tmp_path):
    cfg = tiny_config(epochs=2)
    calls = {"n": 0}

    def stop_soon():
        calls["n"] += 1
        return calls["n"] > 3

    summaries = train_group([GroupJob(cfg, tmp_path / "a", should_stop=stop_soon),
                             GroupJob(cfg.replace(seed=1), tmp_path / "b")])
    assert [s["state"] for s in summaries] == ["cancelled", "finished"]


def test_rng_slots_keep_two_interleaved_random_streams_apart():
    torch.manual_seed(1)
    a = RngSlot()
    torch.manual_seed(2)
    b = RngSlot()
    seq = {"a": [], "b": []}
    for _ in range(3):
        for name, slot in (("a", a), ("b", b)):
            slot.load()
            seq[name].append(torch.rand(1).item())
            slot.save()
    torch.manual_seed(1)
    assert seq["a"] == [torch.rand(1).item() for _ in range(3)]
    torch.manual_seed(2)
    assert seq["b"] == [torch.rand(1).item() for _ in range(3)]


@pytest.mark.slow
def test_a_worker_trains_a_queued_comparison_in_lockstep(tmp_path, monkeypatch):
    """submit_group queues three runs; one worker takes the first and claims the two others: all
    three finish with the same ``lockstep`` group in their summaries."""
    from samon_core import service
    from samon_core.service.settings import load_settings
    from samon_core.service.worker import Worker

    monkeypatch.delenv("SAMON_TRAINER", raising=False)
    store = RunStore(tmp_path / "runs")
    s = load_settings(environ={})
    cfg = tiny_config(epochs=1)
    _, ids = service.submit_group({"SGD": cfg.replace(method="base"), "SAM-all":
                                   cfg.replace(scope="all"), "SAM-ON": cfg}, owner="ann",
                                  store=store, settings=s)
    Worker(store, s, exit_when_idle=True).run()
    summaries = [store.read_summary(rid) for rid in ids]
    assert all(x and x["state"] == "finished" for x in summaries)
    assert all(sorted(x["lockstep"]) == sorted(ids) for x in summaries)

    one = load_settings(environ={}, lockstep_max_runs=1)  # lockstep off: one run at a time
    _, solo = service.submit_group({"a": cfg.replace(seed=7), "b": cfg.replace(seed=8)},
                                   owner="ann", store=store, settings=one)
    Worker(store, one, exit_when_idle=True).run()
    assert all("lockstep" not in store.read_summary(rid) for rid in solo)


def test_an_interrupt_ends_every_run_of_the_group_as_failed_and_propagates(tmp_path):
    """KeyboardInterrupt in one run's step: no run of the group is left 'running' (the one not
    yet built included), and the interrupt reaches the caller."""
    cfg = tiny_config(epochs=1)

    def interrupt(record):
        raise KeyboardInterrupt

    jobs = [GroupJob(cfg.replace(log_every_s=1e-9), tmp_path / "a", callback=interrupt),
            GroupJob(cfg.replace(seed=1), tmp_path / "b")]
    with pytest.raises(KeyboardInterrupt):
        train_group(jobs)
    store = RunStore(tmp_path)
    for rid in ("a", "b"):
        status = store.read_status(rid)
        assert status["state"] == "failed" and status["message"].startswith("KeyboardInterrupt")
