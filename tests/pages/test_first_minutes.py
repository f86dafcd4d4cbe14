"""A student's first minutes (issue 21): something to watch from the first step record on (per-step
curves until the first epoch ends, a step counter and a time left that move every few seconds),
a sidebar that counts a worker training a lockstep group as busy, a comparison menu whose labels
do not go stale, a replay that does not claim to train, one estimate everywhere. AppTest on a
fake store, and the view models the pages use."""

from __future__ import annotations

import os
import time

from support.apptest import app, page, texts
from support.configs import tiny_config
from support.fakes import fake_claim_runs, fake_run
from support.paths import REPO
from support.records import record

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
from samon_core.records import EpochRecord, StepRecord
from samon_core.runs.store import RunStore
from samon_core.service import scheduler

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
                w.write(record(StepRecord, without=("load",), epoch=1, step=s, time=2.0 * s,
                               loss=4.6, acc=0.01 * s, lr=0.1, step_time=0.5,
                               images_per_s=128.0))
            if epoch_record:
                w.write(record(EpochRecord, without=("train_ce", "test_ce", "sam"), epoch=1,
                               step=steps, time=2.0 * steps + 1, train_loss=4.5, train_acc=0.02,
                               test_loss=4.5, test_acc=0.02, epoch_time=9.0, eta_s=45.0))
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
            w.write(record(EpochRecord, without=("train_ce", "test_ce", "sam"), epoch=1, step=4,
                           time=9.0, train_loss=4.5, train_acc=0.02, test_loss=4.5,
                           test_acc=0.02, epoch_time=9.0, eta_s=45.0))
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


def test_an_epochs_status_write_does_not_restart_the_time_left(runs):
    """The countdown runs from when the latest step's status was written (``step_at``), so an
    epoch's end, which rewrites ``updated`` during its evaluation, cannot hold it at one value."""
    ids = first_epoch_group(runs)
    step_at = time.time() - 100.0
    for rid in ids:  # the step's write 100 s ago; the epoch's end rewrote 'updated' just now
        runs.write_status(rid, "running", step_at=step_at)
    infos, data = infos_and_data(runs, ids)
    info, d = infos[0], data[infos[0].run_id]
    assert step_eta(info, d, now=step_at + 10)[2] == 34.0  # 44 s at the step, 10 s later
    text = run_progress(info, d, now=step_at + 100)["text"]
    assert "55 s past its estimate" in text, text  # 100 s since the step, 44 s estimated


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
    record, counted down with the clock between records, never below zero, then 'past its
    estimate' counting on; the
    text changes within 5 s. Without a step record: the status's per-epoch ETA, or 'starting'."""
    ids = first_epoch_group(runs)
    infos, data = infos_and_data(runs, ids)
    info, d = infos[0], data[infos[0].run_id]
    updated = float(info.status["updated"])
    step, total, left = step_eta(info, d, now=updated)
    assert (step, total) == (2, 24) and left == 44.0
    assert step_eta(info, d, now=updated + 10)[2] == 34.0
    assert step_eta(info, d, now=updated + 600)[2] == 0.0  # never below zero (then: overdue)
    texts_ = [run_progress(info, d, now=updated + t)["text"] for t in range(0, 30, 5)]
    assert len(set(texts_)) == len(texts_), texts_  # a new text every 5 s
    assert "about 45 s left" in texts_[0] or "about 40 s left" in texts_[0], texts_[0]
    assert "0 of 6 epochs done · step 2 of 24" in texts_[0]
    # past the estimate (an epoch's evaluation, a slow step): the text says so and keeps moving
    late = [run_progress(info, d, now=updated + t)["text"] for t in range(50, 80, 5)]
    assert all("past its estimate" in t and "left" not in t for t in late), late
    assert len(set(late)) == len(late), late
    assert "10 s past its estimate" in late[1], late[1]  # 55 s since the record, 44 s estimated
    assert "about 5 s left" in run_progress(info, d, now=updated + 44)["text"]  # on time
    assert "just past its estimate" in run_progress(info, d, now=updated + 45)["text"]
    no_steps = run_infos([{"run_id": "x", "config": CFG.to_dict(), "meta": {},
                           "status": {"state": "running", "epoch": 0}, "summary": None}])[0]
    assert "starting" in run_progress(no_steps, None)["text"]
    last = record(StepRecord, without=("load",), epoch=6, step=24, time=60.0, loss=4.0, acc=0.1,
                  lr=0.1, step_time=0.5, images_per_s=128.0)
    done = build_run_data(info.run_id, [*d.records, last], version=len(d.records) + 1)
    assert run_progress(info, done)["text"].endswith("step 24 of 24 · evaluating the last epoch")
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
    first_epoch_group(runs)  # its three runs held by worker w-test
    scheduler.heartbeat(runs.engine, "w-test", host="here", pid=os.getpid(), device="cpu",
                        state="training")
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


# ---------------------------------------------------------------------------------------------
# one estimate everywhere
# ---------------------------------------------------------------------------------------------


def estimate_sentences(at) -> list[str]:
    """Every 'Estimated time on ...' sentence a page shows (captions and markdown)."""
    out = []
    for text in [m.value for m in at.markdown] + [c.value for c in at.caption]:
        start = text.find("Estimated time on ")
        if start >= 0:
            out.append(text[start:text.index(").", start) + 2])
    return out


def quick_demo_estimate() -> str:
    from samon_app.estimates import estimate_group, estimate_text
    from samon_core.runs.presets import get_preset

    return estimate_text(estimate_group(get_preset("cpu-quick-demo").configs))


def test_home_launch_and_claims_say_the_same_estimate(runs):
    """The quick demo's estimate reads the same on Home and on Launch's preset card, and a
    claim card's the same as that function gives for its runs; before any run finished it is
    the table's figure with its range, after one finished both pages scale it alike."""
    from samon_app.estimates import estimate_group, estimate_text
    from samon_core.claims import get_claim

    expected = quick_demo_estimate()
    assert "about **2 min** (likely 45 s to 3 min) for the 3 runs" in expected, expected
    home = page(app(), "app_pages/home.py")
    launch = page(app(), "app_pages/launch.py")
    assert estimate_sentences(home) == [expected]
    assert expected in estimate_sentences(launch)
    claims = page(app(), "app_pages/claims.py")
    claim = get_claim("accuracy")
    card = estimate_text(estimate_group(claim.runs("cpu"), 3))  # the card's 3 seeds
    assert card in estimate_sentences(claims), estimate_sentences(claims)
    # a finished run took 3x the table's time: both pages now say the scaled estimate
    from samon_core.runs.estimate import estimate_seconds

    cfg = CFG.replace(method="base")
    rid = fake_run(runs, cfg)
    runs.write_summary(rid, {"state": "finished", "final_test_acc": 0.4, "epochs_done": 6,
                             "train_time_s": 3 * estimate_seconds(cfg, "cpu"), "device": "cpu"})
    from app_pages import reads

    reads._calibration.clear()  # read again at once (the app reads it every 30 s)
    reads.clear_caches()  # and the listing it reads, which may be under 1 s old (LIST_TTL_S)
    home, launch = page(app(), "app_pages/home.py"), page(app(), "app_pages/launch.py")
    scaled = estimate_sentences(home)
    assert len(scaled) == 1 and "scaled to the 1 run that finished here" in scaled[0]
    assert scaled[0] in estimate_sentences(launch)
    assert scaled[0] != expected


def test_the_readme_quotes_the_apps_quick_demo_estimate():

    from samon_app.estimates import duration_text, estimate_group
    from samon_core.runs.presets import get_preset

    readme = (REPO / "README.md").read_text()
    said = duration_text(estimate_group(get_preset("cpu-quick-demo").configs))
    assert said in " ".join(readme.split()), said


def test_an_estimate_says_its_range():
    from samon_app.estimates import calibration, estimate_group, likely_range

    assert likely_range(100.0, 1.0, 0, 1.0, 1.0) == (50.0, 200.0)  # no calibration: x/2 .. x2
    # calibrated on runs that took 0.5x .. 2x the table (median 1x): that spread
    assert likely_range(100.0, 1.0, 5, 0.5, 2.0) == (50.0, 200.0)
    lo, hi = likely_range(100.0, 1.0, 5, 0.99, 1.01)  # never narrower than 1.25x either way
    assert (lo, hi) == (80.0, 125.0)
    cfg = CFG.replace(method="base")
    from samon_core.runs.estimate import estimate_seconds

    base = estimate_seconds(cfg, "cpu")
    rows = [{"config": cfg.to_dict(), "summary": {"train_time_s": k * base, "device": "cpu"}}
            for k in (1.0, 2.0, 4.0)]
    factors = calibration(rows)
    assert factors["cpu"] == (2.0, 3, 1.0, 4.0)
    est = estimate_group({"SGD": cfg}, 1, "cpu", 1, factors)
    assert est["wall_s"] == 2 * base and est["low_s"] < est["wall_s"] < est["high_s"]
    assert est["low_s"] == base and est["high_s"] == 4 * base


# ---------------------------------------------------------------------------------------------
# Home, Claims and the launch buttons
# ---------------------------------------------------------------------------------------------


def test_home_lists_every_page_and_its_sparsity_numbers_agree(runs):
    from samon_core import paper

    at = page(app(), "app_pages/home.py")
    body = texts(at)
    for name in ("Launch", "Live", "Compare", "Claims", "Playground"):
        assert f"**{name}**" in body, name
    perturbed = next(m for m in at.metric if m.label == "Perturbed by SAM-ON").value
    samon = next(c for c in paper.SPARSE_PERTURBATION if c.method == "SAM-ON")
    assert float(perturbed.rstrip("%")) == round(100 * (1 - samon.sparsity), 2)  # 0.05%
    assert f"({perturbed} of all parameters" in body
    assert "is a setting of the method" in body and "0.1%" not in body


def test_launch_buttons_are_disabled_with_the_reason_under_a_taken_name(runs):
    runs.register_owner("alice")  # alice has a key; this session types her name without it
    for path, keys in (("app_pages/launch.py", ("launch_preset", "launch_form")),
                       ("app_pages/home.py", ("demo_top", "demo_bottom")),
                       ("app_pages/claims.py", ("launch_accuracy", "launch_cost"))):
        at = page(app(owner="alice"), path)
        for key in keys:
            button = at.button(key=key)
            assert button.disabled and "alice" in (button.help or ""), (path, key, button.help)
    free = page(app(owner="bob"), "app_pages/launch.py")  # a new name registers at launch
    assert not free.button(key="launch_preset").disabled


def test_claims_bars_take_the_method_colours(runs):

    from samon_app.progress import STOPPED_COLOR
    from samon_core.catalog.methods import method_color

    ids = fake_claim_runs(runs, "accuracy", {"base": [50.0], "all": [53.0], "norm": [54.0]},
                          state="queued", epochs_done=0)
    runs.write_status(ids[0], "interrupted", message="worker stopped")
    at = page(app(), "app_pages/claims.py")
    css = "\n".join(h.proto.body for h in at.get("html"))
    for key, color in (("base", STOPPED_COLOR), ("all", method_color("all")),
                       ("norm", method_color("norm"))):
        rule = next(line for line in css.splitlines()
                    if f".st-key-claimbar_accuracy_{key}_0 " in line)
        assert color in rule, (key, rule)
    assert len({method_color(k) for k in ("base", "all", "norm")}) == 3


def test_a_verdict_of_runs_still_training_says_so_far():
    """'so far' while runs train; a finished one-seed verdict keeps the verdict's own word."""
    from types import SimpleNamespace

    from app_pages.claims import verdict_label  # noqa: I001 - the page module, outside a run

    v = SimpleNamespace(verdict="inconclusive", provisional=True)
    assert verdict_label(v, training=True) == "inconclusive (so far: runs still training)"
    assert verdict_label(v, training=False) == "inconclusive (provisional)"
    assert verdict_label(SimpleNamespace(verdict="consistent", provisional=False), False) == \
        "consistent"
