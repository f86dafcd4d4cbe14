"""A student's first minutes (issue 21): something to watch from the first step record on (per-step
curves until the first epoch ends, a step counter and a time left that move every few seconds),
a sidebar that counts a worker training a lockstep group as busy, a comparison menu whose labels
do not go stale, a replay that does not claim to train, one estimate everywhere. AppTest on a
fake store, and the view models the pages use."""

from __future__ import annotations

import json
import os
import time

from support.configs import tiny_config
from test_app_pages import app, fake_run, page, texts

from samon_app.progress import (
    PER_EPOCH,
    PER_STEP,
    default_resolution,
    empty_chart_note,
    format_left,
    run_progress,
    step_eta,
    workers_line,
)
from samon_app.reader import build_run_data, run_infos
from samon_app.replay import replay_infos
from samon_core.runs.store import RunStore
from samon_core.service.hosts import this_host

# 6 epochs of 4 steps (256 images, batches of 64): 24 steps in all
CFG = tiny_config(epochs=6)
METHODS = ({"method": "base"}, {"method": "sam", "scope": "all"}, {"method": "sam",
                                                                   "scope": "norm"})


def first_epoch_group(store: RunStore, group: str = "gfirst", steps: int = 2,
                      epoch_record: bool = False) -> list[str]:
    """Three runs of one comparison in their first epoch: ``steps`` step records each (one
    every 2 s of the group's clock), and the first epoch record when ``epoch_record``."""
    ids = []
    for changes in METHODS:
        rid = store.create_run(CFG.replace(**changes), {"owner": "alice", "group": group})
        with store.metrics_writer(rid) as w:
            for s in range(1, steps + 1):
                w.write({"kind": "step", "epoch": 1, "step": s, "time": 2.0 * s, "loss": 4.6,
                         "acc": 0.01 * s, "lr": 0.1, "step_time": 0.5, "images_per_s": 128.0})
            if epoch_record:
                w.write({"kind": "epoch", "epoch": 1, "step": steps, "time": 2.0 * steps + 1,
                         "train_loss": 4.5, "train_acc": 0.02, "test_loss": 4.5,
                         "test_acc": 0.02, "epoch_time": 9.0, "eta_s": 45.0})
        store.write_status(rid, "running", epoch=1 if epoch_record else 0, step=steps,
                           progress=steps / 24, worker="w-test")
        ids.append(rid)
    return ids


def infos_and_data(store: RunStore, ids: list[str]):
    rows = [{"run_id": r, "config": store.read_config(r).to_dict(), "meta": store.read_meta(r),
             "status": store.read_status(r), "summary": None} for r in ids]
    records = {r: store.read_records_since(r, 0)[0] for r in ids}
    return run_infos(rows), {r: build_run_data(r, records[r], version=len(records[r]))
                             for r in ids}


def progress_texts(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


# ---------------------------------------------------------------------------------------------
# something to watch from the first second
# ---------------------------------------------------------------------------------------------


def test_live_shows_step_curves_during_the_first_epoch_then_epochs(runs):
    first_epoch_group(runs)
    at = page(app(group="gfirst", owner="alice"), "app_pages/live.py")
    assert at.get("segmented_control")[1].value == PER_STEP  # [0] is the view picker
    body = texts(at)
    assert "No epoch records yet" not in body
    bars = progress_texts(at)
    assert len(bars) == 3 and all("step 2 of 24" in t and "left" in t for t in bars), bars
    # the first epoch ends: the default becomes per epoch
    for rid in runs.list_runs()["run_id"]:
        with runs.metrics_writer(rid) as w:
            w.write({"kind": "epoch", "epoch": 1, "step": 4, "time": 9.0, "train_loss": 4.5,
                     "train_acc": 0.02, "test_loss": 4.5, "test_acc": 0.02, "epoch_time": 9.0,
                     "eta_s": 45.0})
    time.sleep(1.1)  # the shared reads are at most a second old
    at.run()
    assert at.get("segmented_control")[1].value == PER_EPOCH


def test_a_resolution_the_user_picked_stays(runs):
    first_epoch_group(runs)
    at = page(app(group="gfirst", owner="alice"), "app_pages/live.py")
    at.get("segmented_control")[1].set_value(PER_EPOCH).run()
    assert at.get("segmented_control")[1].value == PER_EPOCH
    at.run()
    assert at.get("segmented_control")[1].value == PER_EPOCH  # not switched back to per step


def test_default_resolution_follows_the_first_epoch(runs):
    ids = first_epoch_group(runs)
    infos, data = infos_and_data(runs, ids)
    assert default_resolution(infos, data) == PER_STEP
    ids = first_epoch_group(runs, "gdone", epoch_record=True)
    infos, data = infos_and_data(runs, ids)
    assert default_resolution(infos, data) == PER_EPOCH
    finished = [fake_run(runs, CFG, group="gfin")]  # nothing active, epoch records: per epoch
    assert default_resolution(*infos_and_data(runs, finished)) == PER_EPOCH


def test_the_time_left_moves_every_few_seconds_and_agrees_with_the_steps(runs):
    """From the step records: 2 s per step so far, 22 of 24 steps to go = 44 s left at the
    record, counted down with the clock between records (at most 30 s), never below zero; the
    text changes within 5 s. Without a step record: the status's per-epoch ETA, or 'starting'."""
    ids = first_epoch_group(runs)
    infos, data = infos_and_data(runs, ids)
    info, d = infos[0], data[infos[0].run_id]
    updated = float(info.status["updated"])
    step, total, left = step_eta(info, d, now=updated)
    assert (step, total) == (2, 24) and left == 44.0
    assert step_eta(info, d, now=updated + 10)[2] == 34.0
    assert step_eta(info, d, now=updated + 600)[2] == 14.0  # counted down 30 s at most
    texts_ = [run_progress(info, d, now=updated + t)["text"] for t in range(0, 30, 5)]
    assert len(set(texts_)) == len(texts_), texts_  # a new text every 5 s
    assert "about 45 s left" in texts_[0] or "about 40 s left" in texts_[0], texts_[0]
    assert "0 of 6 epochs done · step 2 of 24" in texts_[0]
    no_steps = run_infos([{"run_id": "x", "config": CFG.to_dict(), "meta": {},
                           "status": {"state": "running", "epoch": 0}, "summary": None}])[0]
    assert "starting" in run_progress(no_steps, None)["text"]
    assert format_left(44) == "45 s" and format_left(205) == "3 min 25 s"
    assert format_left(7200) == "2 h"


# ---------------------------------------------------------------------------------------------
# the workers in the sidebar
# ---------------------------------------------------------------------------------------------


def test_workers_line_counts_a_worker_training_a_lockstep_group_as_busy():
    group = {"id": "w1", "state": "training", "run_id": "a", "device": "cpu"}
    idle = {"id": "w2", "state": "idle", "run_id": None, "device": "cpu"}
    assert workers_line([group], ["cpu"], 3) == "1 worker (cpu), 1 busy · 3 runs training"
    assert workers_line([group, idle], ["cpu", "cpu"], 3).startswith("2 workers (cpu), 1 busy")
    assert workers_line([idle], ["cpu"], 0) == "1 worker (cpu), 0 busy"


def test_the_sidebar_counts_the_worker_of_a_training_group(runs):
    first_epoch_group(runs)
    folder = runs.root / ".workers"
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(runs.list_runs()["run_id"])
    (folder / "w-test.json").write_text(json.dumps({
        "id": "w-test", "pid": os.getpid(), "host": this_host(), "device": "cpu",
        "state": "training", "run_id": ids[0], "run_ids": ids, "heartbeat": time.time(),
        "started": time.time(), "runs_done": 0, "queue": "sqlite:samon"}))
    at = page(app(group="gfirst", owner="alice"), "app_pages/live.py")
    lines = [c.value for c in at.sidebar.caption if "worker" in c.value]
    assert any("1 worker (cpu), 1 busy · 3 runs training" in c for c in lines), lines


# ---------------------------------------------------------------------------------------------
# a replay trains nothing
# ---------------------------------------------------------------------------------------------


def test_a_replay_does_not_say_the_runs_train(runs):
    rid = fake_run(runs, CFG)
    infos, _data = infos_and_data(runs, [rid])
    shown = replay_infos(infos)
    assert "replay" in empty_chart_note(shown) and "runs train" not in empty_chart_note(shown)
    queued = run_infos([{"run_id": "q", "config": CFG.to_dict(), "meta": {},
                         "status": {"state": "queued"}, "summary": None}])
    assert "runs train" in empty_chart_note(queued)  # real runs still do


# ---------------------------------------------------------------------------------------------
# the comparison menu
# ---------------------------------------------------------------------------------------------


def test_a_comparisons_label_does_not_change_when_its_runs_finish(runs):
    """The menu's label of a comparison stays what it was while its runs trained (a select box
    keeps the label it showed: a label counting active runs read '1 active' after all had
    finished)."""
    from samon_app.tables import group_members, group_table

    ids = first_epoch_group(runs)

    def label() -> str:
        df = runs.list_runs()
        metas = {r: runs.read_meta(r) for r in df["run_id"]}
        table = group_table(df, group_members(metas))
        return table.loc[table["group"] == "gfirst"].iloc[0]["label"], table

    before, table = label()
    assert int(table.iloc[0]["active"]) == 3
    for rid in ids:
        runs.write_status(rid, "finished")
    after, table = label()
    assert after == before and "active" not in after
    assert int(table.iloc[0]["active"]) == 0


# ---------------------------------------------------------------------------------------------
# Compare
# ---------------------------------------------------------------------------------------------


def test_compare_says_which_accuracy_is_not_final_and_what_the_toggle_filters(runs):
    fake_run(runs, CFG.replace(method="base"), state="running", epochs_done=1, acc=0.04,
             group="gc")
    fake_run(runs, CFG.replace(method="sam", scope="norm"), acc=0.5, group="gc")
    at = page(app(group="gc"), "app_pages/compare.py")
    table = at.dataframe(key="compare_table").value
    accs = dict(zip(table["state"], table["test_acc"], strict=True))
    assert accs["running"] == "3.6% at epoch 1 of 6"  # 0.04 * 0.9: not a final accuracy
    assert accs["finished"] == "45.0%"
    toggle = at.toggle(key="c_finished")
    assert toggle.label == "Count finished runs only" and "results table only" in toggle.help
    # not among the curve controls any more: under the heading of the table it filters
    seen = walk(at.main)
    results = seen.index("header:Results in the paper's format")
    assert seen.index("toggle:c_finished") > results > seen.index("toggle:c_bands")


def walk(node) -> list[str]:
    """The page's headers and toggles in the order they are drawn."""
    out = []
    for child in getattr(node, "children", {}).values():
        kind = getattr(child, "type", "")
        if kind == "toggle":
            out.append(f"toggle:{child.key}")
        elif kind == "header":
            out.append(f"header:{child.value}")
        out.extend(walk(child))
    return out
