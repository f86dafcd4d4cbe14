"""The training loop on its own (samon_core/train/loop.py): no store, plug-ins as callbacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from support.configs import tiny_config

from samon_core.train.callbacks import Records
from samon_core.train.loop import Callback, Diverged, Loop

# 128 images in batches of 64: 2 steps per epoch; a step record after every step.
TWO_STEPS = dict(epochs=1, train_subset=128, test_subset=64, log_every_s=1e-9)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Hooks(Callback):
    """Writes down every hook the loop calls, in order."""

    def __init__(self):
        self.calls: list[tuple] = []

    def on_train_start(self, loop):
        self.calls.append(("start", loop.state.step))

    def on_record(self, loop, record):
        self.calls.append(("record", record["kind"], record["step"]))

    def on_heartbeat(self, loop):
        self.calls.append(("heartbeat",))

    def on_eval(self, loop, epoch):
        self.calls.append(("eval", epoch))

    def on_epoch_end(self, loop, epoch):
        self.calls.append(("epoch_end", epoch, loop.state.epoch))

    def on_train_end(self, loop):
        self.calls.append(("train_end", loop.state.step))

    def on_end(self, loop, summary, error):
        self.calls.append(("end", summary["state"], error))


def test_the_loop_trains_two_steps_with_no_callback_and_writes_nothing(tmp_path):
    loop = Loop(tiny_config(**TWO_STEPS), data_dir=tmp_path)
    summary = loop.run()
    assert summary["state"] == "finished"
    assert (summary["steps"], summary["epochs_done"]) == (2, 1)
    assert 0.0 <= summary["final_test_acc"] <= 1.0
    assert summary["total_time_s"] >= summary["train_time_s"] > 0
    assert list(tmp_path.iterdir()) == []  # no run folder, no metrics, no checkpoint


def test_the_loop_imports_no_store():
    code = ("import sys, samon_core.train.loop; "
            "print('samon_core.runs.store' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_callbacks_hear_the_loop_in_order(tmp_path):
    hooks, seen = Hooks(), []
    Loop(tiny_config(**TWO_STEPS), callbacks=[hooks, Records(seen.append)],
         data_dir=tmp_path).run()
    assert hooks.calls == [
        ("start", 0),
        ("record", "step", 1),
        ("record", "step", 2),
        ("heartbeat",),  # before the test evaluation
        ("heartbeat",),  # after it
        ("eval", 1),
        ("record", "epoch", 2),
        ("epoch_end", 1, 1),  # the state counts the epoch as done
        ("train_end", 2),
        ("end", "finished", None),
    ]
    assert [r["kind"] for r in seen] == ["step", "step", "epoch"]  # what Records hands on


def test_a_cancel_ends_the_loop_once_with_a_cancelled_summary(tmp_path):
    hooks = Hooks()
    loop = Loop(tiny_config(**TWO_STEPS), callbacks=[hooks], data_dir=tmp_path,
                should_stop=lambda: any(c[:2] == ("record", "step") for c in hooks.calls))
    summary = loop.run()
    assert summary["state"] == "cancelled" and summary["epochs_done"] == 0
    assert loop.state.step == 1  # stopped before the second step
    assert [c for c in hooks.calls if c[0] == "end"] == [("end", "cancelled", hooks.calls[-1][2])]
    assert loop.end(None) is summary  # a run ends once


def test_a_nan_loss_ends_the_loop_as_diverged(tmp_path):
    hooks = Hooks()

    class Poison(Callback):  # the weights become NaN before the first step
        def on_train_start(self, loop):
            with torch.no_grad():
                for p in loop.setup.model.parameters():
                    p.fill_(float("nan"))

    summary = Loop(tiny_config(**TWO_STEPS, method="base"), callbacks=[Poison(), hooks],
                   data_dir=tmp_path).run()
    assert summary["state"] == "diverged" and summary["diverged_reason"] == "not finite"
    assert (summary["diverged_epoch"], summary["diverged_step"]) == (1, 1)
    (_, state, error), = [c for c in hooks.calls if c[0] == "end"]
    assert state == "diverged" and isinstance(error, Diverged)


def test_a_failing_callback_fails_the_run_and_is_raised(tmp_path):
    hooks = Hooks()

    class Broken(Callback):
        def on_eval(self, loop, epoch):
            raise RuntimeError("probe broke")

    loop = Loop(tiny_config(**TWO_STEPS), callbacks=[hooks, Broken()], data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="probe broke"):
        loop.run()
    assert loop.summary["state"] == "failed" and loop.summary["error"] == \
        "RuntimeError: probe broke"
    assert hooks.calls[-1][:2] == ("end", "failed")
