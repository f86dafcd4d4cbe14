"""Live says when a comparison got runs trained for someone else, replays recorded curves, and
'Train my own' queues the comparison again with a seed nothing can be reused for. The pure
parts (samon_app.reuse, .replay, .retrain) with constructed dicts, the page with AppTest."""

from __future__ import annotations

import math
import time

import pytest
from support.apptest import app, page, plotly_specs, texts
from support.configs import tiny_config
from support.fakes import fake_run, three_methods
from support.records import record

from samon_app.reader import build_run_data, run_infos
from samon_app.replay import record_times, replay_data, replay_infos, replay_records
from samon_app.retrain import fresh_seed, group_configs, retrain_text
from samon_app.reuse import (
    Reused,
    group_request,
    recorded_sentence,
    reused_runs,
    shared_sentence,
)
from samon_app.speed import lockstep_sets
from samon_core.records import EpochRecord


def local(day: int, hour: int, minute: int) -> float:
    """Unix time of a server-local clock time in March 2024."""
    return time.mktime((2024, 3, day, hour, minute, 0, 0, 0, -1))


# ---------------------------------------------------------------------------------------------
# samon_app.replay
# ---------------------------------------------------------------------------------------------


def timed(*times) -> list[dict]:
    return [{"kind": "epoch", "epoch": i, "time": t} for i, t in enumerate(times)]


def test_replay_shows_fewer_records_early_than_at_the_end():
    records = timed(0.0, 100.0, 200.0, 300.0)
    early, part = replay_records(records, 1.0, 100)  # 100 s of training shown
    assert early == records[:2] and part == pytest.approx(1 / 3)
    late, done = replay_records(records, 10.0, 100)
    assert late == records and done == 1.0


def test_replay_of_empty_runs_and_records_without_time():
    assert replay_records([], 5.0, 10) == ([], 1.0)
    records = [{"kind": "norm_stats"}, {"time": 10.0}, {"kind": "x"}, {"time": "late"},
               {"time": 5.0}, {"time": 30.0}]
    # without a usable time a record comes with the one before it; an earlier time (a resume)
    # never reorders: the replay always shows a prefix
    assert record_times(records) == [0.0, 10.0, 10.0, 10.0, 10.0, 30.0]
    assert replay_records(records, 0.0, 10)[0] == records[:1]
    assert replay_records(records, 1.0, 10)[0] == records[:5]
    assert replay_records([{"time": 0.0}], 0.0, 10) == ([{"time": 0.0}], 1.0)


def test_replay_speed_and_elapsed_bounds():
    records = timed(0.0, 60.0)
    for bad in (0, -10, math.nan, math.inf, True, "60"):
        with pytest.raises(ValueError, match="speed"):
            replay_records(records, 1.0, bad)
    with pytest.raises(ValueError, match="elapsed"):
        replay_records(records, math.nan, 10)
    assert replay_records(records, -5.0, 10) == (records[:1], 0.0)  # before play: the start
    assert replay_records(records, math.inf, 10) == (records, 1.0)


def test_replay_of_a_group_ends_with_its_longest_run():
    data = {"a": build_run_data("a", timed(0.0, 10.0)),
            "b": build_run_data("b", timed(0.0, 50.0, 100.0))}
    shown, part = replay_data(data, 2.0, 10)  # 20 s of training
    assert part == pytest.approx(0.2)
    assert len(shown["a"].records) == 2 and len(shown["b"].records) == 1
    assert shown["b"].counts == {"epoch": 1}  # the charts' counts follow the cut
    assert replay_data(data, 10.0, 10)[1] == 1.0


def test_replayed_runs_run_but_keep_how_they_were_trained():
    """Mid-replay the notes and verdicts treat the runs as training; two runs one worker
    trained one after the other still do not count as interleaved."""
    rows = [{"run_id": rid, "config": cfg.to_dict(), "meta": {},
             "status": {"state": "finished", "worker": "w1"}, "summary": summary}
            for rid, cfg, summary in (("a", tiny_config(method="base"), None),
                                      ("b", tiny_config(scope="norm"), {"lockstep": ["b", "c"]}),
                                      ("c", tiny_config(scope="all"), {"lockstep": ["b", "c"]}))]
    infos = run_infos(rows)
    shown = replay_infos(infos)
    assert {i.state for i in shown} == {"running"} and {i.state for i in infos} == {"finished"}
    assert sorted(map(sorted, lockstep_sets(shown))) == [["a"], ["b", "c"]]


# ---------------------------------------------------------------------------------------------
# samon_app.reuse
# ---------------------------------------------------------------------------------------------


def run(label, owner, ended=None, state="finished", requesters=(), group="gt", created=0.0):
    meta = {"owner": owner, "group": group, "created": created, "requesters": list(requesters)}
    return {"label": label, "meta": meta, "status": {"state": state, "ended": ended}}


def test_group_request_is_the_earliest_ask_of_the_group():
    metas = [run("SGD", "teacher", requesters=[{"owner": "student", "group": "gs", "time": 9.0}],
                 created=1.0)["meta"],
             {"owner": "student", "group": "gs", "created": 7.0},
             {"owner": "bob", "group": "gb", "created": 3.0}]
    assert group_request(metas, "gs") == ("student", 7.0)
    assert group_request(metas, "gt") == ("teacher", 1.0)
    assert group_request(metas, "nowhere") == ("", None)


def test_reused_runs_are_those_trained_for_someone_else():
    asked = local(2, 9, 0)
    runs = [run("SGD", "teacher", ended=local(2, 8, 49)),  # recorded before the ask
            run("SAM-ON", "student", ended=local(2, 9, 30), group="gs"),  # trained for the group
            run("SAM-all", "teacher", state="running"),  # shared while it trains
            run("mask", "student", ended=local(2, 8, 0))]  # the student's own, asked again
    found = {r.label: r for r in reused_runs(runs, "student", asked)}
    assert sorted(found) == ["SAM-all", "SGD", "mask"]
    assert found["SGD"].recorded and found["mask"].recorded
    assert not found["SAM-all"].recorded and found["SAM-all"].ended is None


def rec(label, owner, ended, recorded=True):
    return Reused(label, label.split(" · ")[0], owner, ended, recorded)


def test_recorded_sentence_names_owners_and_server_time():
    asked = local(2, 10, 0)
    three = [rec(m, "teacher", local(2, 8, 49)) for m in ("SGD", "SAM-all", "SAM-ON")]
    assert recorded_sentence(three, requester="student", viewer="student", created=asked,
                             n_runs=3) == (
        "SGD, SAM-all and SAM-ON were trained by teacher at 08:49 (server time), before you "
        "asked: you got their recorded runs, nothing was trained for you.")
    mixed = three[:2] + [rec("SAM-ON", "bob", local(1, 23, 10))]
    assert recorded_sentence(mixed, requester="student", viewer="carol", created=asked,
                             n_runs=4) == (
        "SGD and SAM-all were trained by teacher at 08:49, SAM-ON by bob at Mar 01 23:10 "
        "(server time), before student asked: student got their recorded runs, they were not "
        "trained again.")
    seeds = [rec(f"SGD · seed {s}", "teacher", local(2, 8, 49)) for s in range(3)]
    assert recorded_sentence(seeds, requester="teacher", viewer="teacher", created=asked,
                             n_runs=3).startswith("SGD (3 runs) were trained by you at 08:49")
    assert recorded_sentence([rec("SGD", "t", None, recorded=False)], requester="s",
                             viewer="s", created=asked, n_runs=1) is None


def test_shared_sentence_for_runs_still_training_when_asked():
    shared = [rec("SAM-all", "teacher", None, recorded=False)]
    assert shared_sentence(shared, requester="student", viewer="student") == (
        "SAM-all was asked for first by teacher and was already queued or training when you "
        "asked: one training serves everyone who asked for the same run.")
    assert shared_sentence([rec("SGD", "t", 1.0)], requester="s", viewer="s") is None


# ---------------------------------------------------------------------------------------------
# samon_app.retrain
# ---------------------------------------------------------------------------------------------


def test_group_configs_keeps_one_config_per_setting_and_counts_seeds():
    methods = three_methods()
    rows = [{"config": cfg.replace(seed=seed).to_dict(),
             "meta": {"label": f"{label} (seed {seed})"}}
            for label, cfg in methods.items() for seed in (4, 3)]
    rows.append({"config": methods["SAM-ON"].replace(rho=0.5).to_dict(), "meta": {}})
    configs, seeds = group_configs(rows)
    assert list(configs) == ["SGD", "SAM-all", "SAM-ON", "SAM-ON #2"]
    assert seeds == 2
    assert {c.seed for label, c in configs.items() if label != "SAM-ON #2"} == {3}
    with pytest.raises(ValueError):
        group_configs([{"config": {"epochs": -1}, "meta": {}}])  # another version


def test_fresh_seed_avoids_every_stored_run_of_the_request():
    sgd, samon = three_methods()["SGD"], three_methods()["SAM-ON"]
    assert fresh_seed([sgd, samon], 1, set()) == 1
    stored = {sgd.replace(seed=s).config_hash() for s in (1, 2)} | {
        samon.replace(seed=4).config_hash()}
    assert fresh_seed([sgd, samon], 1, stored) == 3
    assert fresh_seed([sgd, samon], 2, stored) == 5  # 3..4 would reuse SAM-ON's seed 4
    assert fresh_seed([sgd], 2, stored) == 3


def test_retrain_text_says_what_and_how_long():
    assert retrain_text(["SGD", "SAM-all", "SAM-ON"], 3, 1, "2 min") == (
        "Trains SGD, SAM-all and SAM-ON again with seed 3, so that nothing can be reused: about "
        "2 min on this machine.")
    assert "SGD again with seeds 3 to 5" in retrain_text(["SGD"], 3, 3, "5 min")


# ---------------------------------------------------------------------------------------------
# the Live page
# ---------------------------------------------------------------------------------------------


def teacher_then_student(store, configs=None) -> tuple[str, list[str], float, str]:
    """Finished runs of 'teacher', then 'student' (registered, as a first launch does) asking for
    the same comparison: the student's group, its run ids, when the teacher's last run ended
    and the student's owner key."""
    from samon_core import service

    configs = configs or three_methods()
    for cfg in configs.values():
        rid = fake_run(store, cfg, owner="teacher", group="gteacher")
        ended = store.read_status(rid)["ended"]
    key = service.register_owner("student", store=store)
    group, ids = service.submit_group(configs, owner="student", owner_key=key, store=store)
    return group, ids, ended, key


def test_live_says_who_trained_the_reused_runs(runs):
    group, ids, ended, _key = teacher_then_student(runs)
    assert {runs.read_meta(r)["owner"] for r in ids} == {"teacher"}  # all reused
    body = texts(page(app(group=group, owner="student"), "app_pages/live.py"))
    assert "SGD, SAM-all and SAM-ON were trained by teacher at" in body
    assert time.strftime("%H:%M", time.localtime(ended)) in body
    assert "you got their recorded runs, nothing was trained for you." in body
    teacher = texts(page(app(group="gteacher", owner="teacher"), "app_pages/live.py"))
    assert "trained by" not in teacher  # the teacher's own comparison trained for them


def long_run(store, config, owner: str, group: str, seconds: float = 4800.0) -> str:
    """A finished run whose records span ``seconds`` of training (4 epochs)."""
    rid = store.create_run(config, {"owner": owner, "group": group})
    with store.metrics_writer(rid) as w:
        for e in range(1, 5):
            w.write(record(EpochRecord, without=("train_ce", "test_ce", "sam"), epoch=e,
                           step=10 * e, time=seconds * e / 4, train_loss=2.0 / e,
                           train_acc=0.2 * e, test_loss=2.1 / e, test_acc=0.18 * e,
                           epoch_time=seconds / 4, eta_s=0.0))
    store.write_status(rid, "finished", epoch=4, progress=1.0)
    store.write_summary(rid, {"state": "finished", "final_test_acc": 0.72, "epochs_done": 4})
    return rid


def acc_points(at) -> int:

    spec = plotly_specs(at)["live_acc_chart"]
    return sum(len(trace.get("x") or ()) for trace in spec["data"])


def test_live_replays_recorded_runs(runs):
    cfg = tiny_config(epochs=4)
    for config in three_methods(cfg).values():
        long_run(runs, config, "teacher", "glong")
    at = page(app(group="glong", owner="teacher"), "app_pages/live.py")
    whole = acc_points(at)
    at.button(key="live_replay_play").click().run()  # 60x: 80 min of training in 80 s
    assert not at.exception, [e.message for e in at.exception]
    replay = [p.proto.text for p in at.get("progress") if "Replay at" in p.proto.text]
    assert replay and "60x real time" in replay[0]
    assert acc_points(at) < whole  # early in the replay: not every epoch yet
    at.button(key="live_replay_stop").click().run()
    assert not at.exception
    assert not [p for p in at.get("progress") if "Replay at" in p.proto.text]
    assert acc_points(at) == whole


def test_train_my_own_queues_new_runs_with_a_fresh_seed(runs):
    group, old_ids, _, key = teacher_then_student(runs)
    fake_run(runs, three_methods()["SGD"].replace(seed=1), owner="bob", group="gbob")
    at = page(app(group=group, owner="student", key=key), "app_pages/live.py")
    assert "Trains SGD, SAM-all and SAM-ON again with seed 2" in texts(at)
    at.button(key="live_train_own").click().run()
    assert not at.exception, [e.message for e in at.exception]
    df = runs.list_runs(owner="student")
    assert len(df) == 3 and df["group"].nunique() == 1
    new_group = df["group"].iloc[0]
    assert new_group not in (group, "gteacher")
    assert set(df["seed"]) == {2} and set(df["state"]) == {"queued"}
    assert not set(df["run_id"]) & set(old_ids)  # created for the student, none reused
    assert at.query_params["group"] == new_group  # Live follows the new comparison
