"""Several workers per device: the setting, the "auto" capacity rule, the pool's slots and the CPU
thread split. No real worker or training starts: the process start is replaced by a recorder."""

from __future__ import annotations

import pytest

from samon_core.catalog import MODELS
from samon_core.service import pool, worker
from samon_core.service.pool import (
    GiB,
    WorkerPool,
    cpu_threads_per_worker,
    largest_allowed_params,
    worker_memory_bytes,
    worker_slots,
    workers_for_device,
)
from samon_core.service.settings import load_settings


@pytest.fixture(autouse=True)
def _no_developer_settings(clean_env):
    clean_env.delenv("OMP_NUM_THREADS", raising=False)


def settings(**kw):
    return load_settings(environ={}, **kw)


# --- the setting ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0", "9", "x", "2.5", "-1"])
def test_bad_workers_per_device_is_refused_in_one_line(bad):
    with pytest.raises(ValueError) as info:
        load_settings(environ={"SAMON_WORKERS_PER_DEVICE": bad})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("setting workers_per_device (from $SAMON_WORKERS_PER_DEVICE) "
                              "must be 'auto' or a whole number from 1 to 8")


@pytest.mark.parametrize("bad", [0, 9, True, 2.0])
def test_bad_workers_per_device_argument_is_refused(bad):
    with pytest.raises(ValueError, match="workers_per_device .*from 1 to 8"):
        settings(workers_per_device=bad)


def test_workers_per_device_accepts_auto_and_whole_numbers(tmp_path):
    assert settings().workers_per_device == "auto"  # the default
    assert settings(workers_per_device=8).workers_per_device == 8
    assert load_settings(environ={"SAMON_WORKERS_PER_DEVICE": " 3 "}).workers_per_device == 3
    assert load_settings(environ={"SAMON_WORKERS_PER_DEVICE": "Auto"}).workers_per_device == "auto"
    toml = tmp_path / "samon.toml"
    toml.write_text("workers_per_device = 2\n")
    s = load_settings(environ={"SAMON_SETTINGS": str(toml)})
    assert s.workers_per_device == 2
    assert load_settings(environ=s.to_environ()) == s  # what the pool hands to its children


# --- how many fit ----------------------------------------------------------------------------


def test_workers_for_device_is_bound_by_memory_and_the_cap():
    assert workers_for_device("cuda", 10 * GiB, 3 * GiB) == 3  # 0.9 * 10 // 3
    assert workers_for_device("cuda", 10 * GiB, 2 * GiB) == 4  # 4.5 fit: the cap
    assert workers_for_device("cuda", 100 * GiB, 1 * GiB, cap=2) == 2
    assert workers_for_device("cuda", 1 * GiB, 3 * GiB) == 1  # not even one fits: still one
    assert workers_for_device("cuda", None, 1 * GiB) == 1  # free memory unknown
    assert workers_for_device("cpu", 100 * GiB, 1 * GiB) == 1  # one run's threads fill a CPU
    with pytest.raises(ValueError, match="must be positive"):
        workers_for_device("cuda", GiB, 0)


def test_worker_memory_follows_its_formula():
    base = worker_memory_bytes(10_000, 100)
    expected = (pool.CONTEXT_BYTES + pool.RUN_FIXED_BYTES + 4 * 5 * 10_000
                + 4 * 2 * 2000 * 100 * 100)  # sqrt(10_000) = 100
    assert base == expected
    assert worker_memory_bytes(10_000, 200) - base == 4 * 2 * 2000 * 100 * 100  # batch: linear
    # a lockstep group holds every run's state, but one batch of activations at a time
    assert worker_memory_bytes(10_000, 100, 3) - base == 2 * (pool.RUN_FIXED_BYTES
                                                              + 4 * 5 * 10_000)
    with pytest.raises(ValueError, match="must be positive"):
        worker_memory_bytes(0, 128)


def test_the_largest_allowed_model_sets_the_estimate():
    biggest = max(s.num_params for s in MODELS.values())
    assert largest_allowed_params(settings()) == biggest
    assert largest_allowed_params(settings(allowed_models=["tiny_resnet", "resnet20"])) == (
        MODELS["resnet20"].num_params)
    assert largest_allowed_params(settings(max_model_params=300_000)) == (
        MODELS["resnet20"].num_params)


# --- slots: devices x workers per device -------------------------------------------------------


def test_slots_repeat_each_device():
    assert worker_slots(["0", "1"], settings(workers_per_device=2)) == ["0", "0", "1", "1"]
    assert worker_slots(["cpu"], settings(workers_per_device=3)) == ["cpu"] * 3
    assert worker_slots(["cpu"], settings()) == ["cpu"]  # auto on a CPU


def test_auto_slots_follow_each_gpu_s_free_memory():
    s = settings(allowed_models=["tiny_resnet"], lockstep_max_runs=1)
    need = worker_memory_bytes(MODELS["tiny_resnet"].num_params, 128)
    free = {"0": int(2.5 * need / 0.9), "1": need // 2}  # room for 2, room for none
    assert worker_slots(["0", "1"], s, free.get) == ["0", "0", "1"]
    # two entries of one GPU share what it holds; auto on the CPU stays 1
    free = {"0": 100 * need}
    assert worker_slots(["0", "0", "cpu"], s, free.get) == ["0"] * 4 + ["cpu"]


# --- the pool starts them ----------------------------------------------------------------------


class _Started:
    """Stands in for a worker process that exits at once with code 0 (no restart)."""

    pid = 2**22 + 1  # never signalled: it has exited before stop() looks
    returncode = 0

    def __init__(self, cmd, env, **kw):
        self.cmd, self.env = cmd, env

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0


@pytest.fixture
def started(monkeypatch):
    calls: list[_Started] = []

    def popen(cmd, env, **kw):
        calls.append(_Started(cmd, env, **kw))
        return calls[-1]

    monkeypatch.setattr(pool.subprocess, "Popen", popen)
    monkeypatch.setattr(worker.signal, "signal", lambda *a: None)  # keep pytest's handlers
    return calls


def _device_of(call: _Started) -> str:
    return call.cmd[call.cmd.index("--devices") + 1]


def test_worker_cli_starts_devices_times_workers_per_device(started, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what --devices auto finds
    rc = worker.worker_main(["--devices", "auto", "--workers-per-device", "2",
                                 "--runs-dir", str(tmp_path / "runs"), "--log-level", "error"])
    assert rc == 0
    assert [_device_of(c) for c in started] == ["0", "0", "1", "1"]
    assert [c.env["CUDA_VISIBLE_DEVICES"] for c in started] == ["0", "0", "1", "1"]
    for call in started:  # each child is one worker, never a pool of its own
        assert call.cmd[call.cmd.index("--workers-per-device") + 1] == "1"


def test_worker_cli_auto_asks_the_free_memory(started, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(pool, "gpu_free_bytes", lambda entry: 1000 * GiB)
    worker.worker_main(["--runs-dir", str(tmp_path / "runs"), "--log-level", "error"])
    assert [_device_of(c) for c in started] == ["0"] * pool.AUTO_CAP


def test_cpu_workers_split_the_cores(started, monkeypatch, tmp_path):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 8)
    worker.worker_main(["--devices", "cpu", "--workers-per-device", "4",
                            "--runs-dir", str(tmp_path / "runs"), "--log-level", "error"])
    assert [c.env["OMP_NUM_THREADS"] for c in started] == ["2"] * 4
    assert all(c.env["CUDA_VISIBLE_DEVICES"] == "" for c in started)


def test_threads_set_by_hand_win(started, monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    WorkerPool(tmp_path, ["cpu", "cpu"], settings=settings()).start().stop(0)
    assert [c.env["OMP_NUM_THREADS"] for c in started] == ["3", "3"]


def test_cpu_threads_per_worker():
    assert cpu_threads_per_worker(1, 16) == 16
    assert cpu_threads_per_worker(3, 16) == 5
    assert cpu_threads_per_worker(4, 2) == 1  # never below one
    assert cpu_threads_per_worker(2, None) == 1


def test_a_bad_workers_per_device_option_exits_2(capsys, tmp_path):
    rc = worker.worker_main(["--workers-per-device", "0", "--runs-dir", str(tmp_path)])
    assert rc == 2
    assert "workers_per_device" in capsys.readouterr().err
