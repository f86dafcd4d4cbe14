"""The class experiment: the teacher starts it, every student adds one seed, and the class verdict
pools every seed of exactly the experiment's configs into the claim's own verdict; the projector
page shows it without any key; a finished experiment is exported and loaded again.

Runs are faked with records of the ``samon_core.records`` types (what the trainer writes;
``support.records.run_records``), so
the verdicts are the claims' real rules on known numbers."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import goto, session
from support.records import MEANS, run_records
from support.teacher import TEACHER_TOKEN, teacher_settings

from samon_app.class_verdict import class_verdict, for_viewer, power_status, seed_ranges
from samon_core import service
from samon_core.claims import collect, get_claim, index_runs
from samon_core.claims.class_replay import (
    BadReplayFile,
    clear_replay,
    export_experiment,
    import_experiment,
    load_replay,
    replay_store,
)
from samon_core.claims.classroom import (
    NoExperiment,
    add_my_seed,
    pool,
    pooled_verdict,
    set_provisional,
    start_experiment,
    stop_experiment,
)
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.service.room import ClassExperiment, read_room

TOKEN = TEACHER_TOKEN
EPOCHS = 30  # the cpu size's

pytestmark = pytest.mark.usefixtures("clean_env")


def settings(**kw):
    return teacher_settings(**kw)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


# ---------------------------------------------------------------------------------------------
# fake runs with the trainer's record types
# ---------------------------------------------------------------------------------------------


def fake_run(store: RunStore, config: RunConfig, acc: float, *, owner: str = "alice",
             state: str = "finished", epochs_done: int | None = None) -> str:
    """A run folder as the trainer leaves it (records up to ``epochs_done``)."""
    rid = store.create_run(config, {"owner": owner, "group": f"g-{owner}-{config.seed}",
                                    "requesters": [{"owner": owner, "group": "", "time": 1.0}]})
    done = config.epochs if epochs_done is None else epochs_done
    with store.metrics_writer(rid) as w:
        recs = run_records(acc, config.epochs)
        for rec in recs if done == config.epochs else recs[: 1 + 3 * done]:
            w.write(rec)
    store.write_status(rid, state, epoch=done)
    if state == "finished":
        store.write_summary(rid, {"state": "finished", "final_test_acc": acc / 100,
                                  "epochs_done": done})
    return rid


def accuracies(seeds: int, seed: int = 0) -> dict[int, dict[str, float]]:
    """seed -> method -> final accuracy: a shared seed effect (paired) plus each run's noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in range(seeds):
        shared = rng.normal(0, 3.0)
        out[s] = {m: round(mu + shared + rng.normal(0, 1.0), 2) for m, mu in MEANS.items()}
    return out


def fake_class(store: RunStore, seeds: int, owner_of=lambda s: f"student{s:02d}",
               claim: str = "accuracy", size: str = "cpu") -> dict[int, dict[str, float]]:
    """``seeds`` seeds of the claim's runs, seed s trained by ``owner_of(s)``."""
    accs = accuracies(seeds)
    configs = get_claim(claim).method_configs(size)
    for s, per_method in accs.items():
        for m, acc in per_method.items():
            fake_run(store, configs[m].replace(seed=s), acc, owner=owner_of(s))
    return accs


def experiment(**kw) -> ClassExperiment:
    return ClassExperiment(**{"claim": "accuracy", "size": "cpu", "started_at": 1.0, **kw})


def start(store: RunStore, **kw) -> ClassExperiment:
    return start_experiment(kw.pop("claim", "accuracy"), kw.pop("size", "cpu"),
                            teacher_token=TOKEN, store=store, settings=settings(), **kw)


# ---------------------------------------------------------------------------------------------
# the pooled verdict
# ---------------------------------------------------------------------------------------------


def test_thirty_owners_pool_into_the_verdict_of_the_same_runs_under_one_owner(tmp_path):
    many, one = RunStore(tmp_path / "many"), RunStore(tmp_path / "one")
    fake_class(many, 30)
    fake_class(one, 30, owner_of=lambda s: "alice")
    exp = experiment()
    p_many, got_many = pooled_verdict(many, exp)
    p_one, got_one = pooled_verdict(one, exp)
    assert p_many.seeds == tuple(range(30)) == p_one.seeds
    assert got_many.verdict is not None
    assert got_many.verdict.as_dict() == got_one.verdict.as_dict()
    # and it is the claim's own verdict, as `claim verdict accuracy --size cpu` computes it
    assert got_many.verdict.as_dict() == collect(many, "accuracy", "cpu").verdict.as_dict()
    parts = got_many.verdict.parts
    assert all(part["seeds"] == [30, 30] for part in parts)
    assert got_many.verdict.verdict == "consistent"  # 30 paired seeds settle a 2-point gap


def test_a_run_with_another_config_does_not_pool(store):
    fake_class(store, 4)
    before = pooled_verdict(store, experiment())[1].verdict.as_dict()
    sgd = get_claim("accuracy").method_configs("cpu")["base"]
    others = [sgd.replace(seed=1, lr=0.05), sgd.replace(seed=1, epochs=10),
              sgd.replace(seed=9, label_noise=0.0), sgd.replace(seed=2, device="cpu")]
    for cfg in others:
        fake_run(store, cfg, 99.0, owner="mallory")
    p, got = pooled_verdict(store, experiment())
    assert p.seeds == (0, 1, 2, 3)
    assert not {r.run_id for r in p.index} & {
        r.run_id for r in index_runs(store) if r.config.lr == 0.05 or r.config.seed == 9}
    assert got.verdict.as_dict() == before


def test_a_duplicate_seed_counts_once(store):
    fake_class(store, 3)
    norm = get_claim("accuracy").method_configs("cpu")["norm"]
    fake_run(store, norm.replace(seed=1), 10.0, owner="bob")  # a second SAM-ON run of seed 1
    p, got = pooled_verdict(store, experiment())
    assert p.seeds == (0, 1, 2) and p.duplicates == 1
    assert got.verdict.parts[0]["seeds"] == [3, 3]  # three seeds a side, not four
    assert len(got.runs) == 9


def test_runs_still_training_count_only_when_provisional(store):
    fake_class(store, 3)
    configs = get_claim("accuracy").method_configs("cpu")
    fake_run(store, configs["base"].replace(seed=3), 70.0, owner="dan")
    fake_run(store, configs["all"].replace(seed=3), 72.0, owner="dan")
    fake_run(store, configs["norm"].replace(seed=3), 72.0, owner="dan", state="running",
             epochs_done=5)
    for m in ("base", "all", "norm"):  # seed 4: queued, no epoch yet
        fake_run(store, configs[m].replace(seed=4), 70.0, owner="eve", state="queued",
                 epochs_done=0)
    p, got = pooled_verdict(store, experiment())
    assert p.seeds == (0, 1, 2) and p.waiting == (3, 4)
    assert not got.verdict.provisional
    p, got = pooled_verdict(store, experiment(provisional=True))
    assert p.seeds == (0, 1, 2, 3) and p.waiting == (4,)  # no epoch yet: nothing to count
    assert got.verdict.provisional and got.verdict.evidence["epoch"] == 5


def test_runs_created_after_the_stop_do_not_count(store):
    fake_class(store, 3)
    stopped = store.clock()
    exp = experiment(stopped_at=stopped)
    late = RunStore(store.root, clock=lambda: stopped + 60)
    configs = get_claim("accuracy").method_configs("cpu")
    for m in configs:
        fake_run(late, configs[m].replace(seed=3), 70.0, owner="late")
    assert pool(store, exp).seeds == (0, 1, 2)
    assert pool(store, experiment()).seeds == (0, 1, 2, 3)


# ---------------------------------------------------------------------------------------------
# the teacher starts and stops it; students add seeds
# ---------------------------------------------------------------------------------------------


def test_only_the_teacher_starts_stops_or_loads_an_experiment(store):
    key = service.register_owner("alice", store=store, settings=settings())
    for token in (None, "", "not-the-token", key):
        with pytest.raises(service.NotAllowed):
            start_experiment("accuracy", "cpu", teacher_token=token, store=store,
                             settings=settings())
    assert read_room(store).experiment is None
    exp = start(store)
    for call in (lambda t: stop_experiment(teacher_token=t, store=store, settings=settings()),
                 lambda t: set_provisional(True, teacher_token=t, store=store,
                                           settings=settings()),
                 lambda t: load_replay(b"x", teacher_token=t, store=store, settings=settings()),
                 lambda t: clear_replay(teacher_token=t, store=store, settings=settings())):
        with pytest.raises(service.NotAllowed):
            call(key)
    assert read_room(store).experiment == exp and exp.running
    with pytest.raises(ValueError, match="unknown claim"):
        start_experiment("nope", "cpu", teacher_token=TOKEN, store=store, settings=settings())
    with pytest.raises(ValueError, match="size must be one of"):
        start_experiment("accuracy", "huge", teacher_token=TOKEN, store=store,
                         settings=settings())
    assert set_provisional(True, teacher_token=TOKEN, store=store,
                           settings=settings()).provisional
    stopped = stop_experiment(teacher_token=TOKEN, store=store, settings=settings())
    assert stopped.stopped_at is not None and not stopped.running
    assert read_room(store).experiment == stopped


def test_add_my_seed_queues_the_next_unused_seed_under_the_students_name(store):
    with pytest.raises(NoExperiment):
        add_my_seed(owner="alice", store=store, settings=settings())
    start(store)
    sgd = get_claim("accuracy").method_configs("cpu")["base"]
    fake_run(store, sgd.replace(seed=0), 70.0, owner="teacher")  # seed 0 is used (one config)
    key = service.register_owner("alice", store=store, settings=settings())
    got = add_my_seed(owner="alice", owner_key=key, store=store, settings=settings())
    assert got.seed == 1 and len(got.run_ids) == 3
    for rid in got.run_ids:
        assert store.read_config(rid).seed == 1
        meta = store.read_meta(rid)
        assert meta["owner"] == "alice" and meta["preset"] == "claim:accuracy"
        assert meta["group"] == got.group
    assert add_my_seed(owner="alice", owner_key=key, store=store, settings=settings()).seed == 2
    with pytest.raises(service.NotAllowed):  # a registered name without its key
        add_my_seed(owner="alice", store=store, settings=settings())
    with pytest.raises(service.LimitExceeded):  # the limits apply as to any launch
        add_my_seed(owner="alice", owner_key=key, store=store,
                    settings=settings(max_queued_per_owner=6))
    stop_experiment(teacher_token=TOKEN, store=store, settings=settings())
    with pytest.raises(NoExperiment):
        add_my_seed(owner="alice", owner_key=key, store=store, settings=settings())


def test_the_rooms_locks_bind_add_my_seed(store):
    service.set_room(service.Room(max_epochs=5), teacher_token=TOKEN, store=store,
                     settings=settings())
    start(store)
    with pytest.raises(service.RoomLocked, match="at most 5 epochs"):
        add_my_seed(owner="bob", store=store, settings=settings())
    assert store.run_ids() == []


def test_students_clicking_at_once_get_different_seeds(store):
    start(store)
    n = 8
    keys = {f"s{i}": service.register_owner(f"s{i}", store=store, settings=settings())
            for i in range(n)}
    barrier = threading.Barrier(n)
    got: dict[str, int] = {}
    errors: list[BaseException] = []

    def click(name: str) -> None:
        try:
            barrier.wait()
            got[name] = add_my_seed(owner=name, owner_key=keys[name], store=store,
                                    settings=settings()).seed
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=click, args=(name,)) for name in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(got.values()) == list(range(n))  # all different, none skipped
    seeds_of = {}
    for rid in store.run_ids():
        seeds_of.setdefault(store.read_meta(rid)["owner"], set()).add(store.read_config(rid).seed)
    assert seeds_of == {name: {seed} for name, seed in got.items()}


# ---------------------------------------------------------------------------------------------
# replay: export and load
# ---------------------------------------------------------------------------------------------


def test_export_and_load_give_the_same_class_verdict_without_names_or_checkpoints(store,
                                                                                  tmp_path):
    fake_class(store, 5)
    (store.run_dir(store.run_ids()[0]) / "checkpoint.pt").write_bytes(b"weights")
    exp = start(store)
    data = export_experiment(store, exp)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        text = b"".join(z.read(n) for n in names)
    assert not [n for n in names if "checkpoint" in n]
    assert len([n for n in names if n.endswith("config.json")]) == 15
    assert b"student0" not in text and b"student-01" in text  # pseudonyms, never names
    target = RunStore(tmp_path / "next-week")
    with pytest.raises(service.NotAllowed):
        import_experiment(data, store=target, teacher_token=None, settings=settings())
    loaded = import_experiment(data, store=target, teacher_token=TOKEN, settings=settings())
    assert loaded.exported_at is not None and not loaded.running
    assert loaded.claim == "accuracy" and loaded.size == "cpu"
    assert (pooled_verdict(target, loaded)[1].verdict.as_dict()
            == pooled_verdict(store, exp)[1].verdict.as_dict())
    # loading twice adds nothing; the room's replay is a store of its own
    import_experiment(data, store=target, teacher_token=TOKEN, settings=settings())
    assert len(target.run_ids()) == 15
    replay = load_replay(data, teacher_token=TOKEN, store=store, settings=settings())
    assert read_room(store).replay == replay
    assert len(replay_store(store).run_ids()) == 15 and len(store.run_ids()) == 15
    clear_replay(teacher_token=TOKEN, store=store, settings=settings())
    assert read_room(store).replay is None and not replay_store(store).root.exists()


def test_a_replay_keeps_its_rows_beside_its_folders_through_loads_and_removals(
        tmp_path, any_store):
    """The replay store's rows live in its own SQLite file, also when the room's database is a
    PostgreSQL server shared by every store: a second load in the same process (a fresh staging
    store, not a cached database whose file was moved away), a removal and a load again leave
    no row without its folder and none in the room's database."""
    room_store = any_store
    last_week = RunStore(tmp_path / "last-week", database_url=f"sqlite:///{tmp_path / 'lw.db'}")
    fake_class(last_week, 3)
    three = export_experiment(last_week, experiment())
    fake_class(room_store, 5)
    five = export_experiment(room_store, start(room_store))
    main_rows = set(room_store.read_statuses())
    for data, n in ((three, 9), (five, 15), (three, 9)):
        got = load_replay(data, teacher_token=TOKEN, store=room_store, settings=settings())
        replay = replay_store(room_store)
        assert sorted(replay.read_statuses()) == sorted(replay.run_ids()) and \
            len(replay.run_ids()) == n
        assert {st["state"] for st in replay.read_statuses().values()} == {"finished"}
        assert pooled_verdict(replay, got)[0].seeds == tuple(range(n // 3))
        assert set(room_store.read_statuses()) == main_rows  # the room's database: untouched
        assert [p.name for p in room_store.root.iterdir() if p.name.startswith(".replay")] \
            == [".replay"]  # no staging or old folder left
    clear_replay(teacher_token=TOKEN, store=room_store, settings=settings())
    assert not replay_store(room_store).root.exists()
    load_replay(five, teacher_token=TOKEN, store=room_store, settings=settings())
    assert len(replay_store(room_store).read_statuses()) == 15


def version_one_file(runs: dict[str, tuple[RunConfig, float]]) -> bytes:
    """A class experiment file as version 1 wrote it, member names spelled out: the format is
    fixed, whatever the code calls its files (samon_core/runs/files.py)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("experiment.json", json.dumps({
            "format": "samon-class-experiment", "version": 1, "exported_at": 5.0,
            "runs": list(runs),
            "experiment": {**experiment().model_dump(mode="json"), "exported_at": 5.0}}))
        for rid, (config, acc) in runs.items():
            z.writestr(f"runs/{rid}/config.json", config.to_json())
            z.writestr(f"runs/{rid}/meta.json", json.dumps(
                {"label": "old", "group": "class-01", "preset": None, "created": 2.0,
                 "owner": "student-01",
                 "requesters": [{"owner": "student-01", "group": "class-01", "time": 2.0}]}))
            z.writestr(f"runs/{rid}/metrics.jsonl", "".join(
                json.dumps(r) + "\n" for r in run_records(acc, config.epochs)))
            z.writestr(f"runs/{rid}/summary.json", json.dumps(
                {"state": "finished", "final_test_acc": acc / 100, "epochs_done": config.epochs}))
            z.writestr(f"runs/{rid}/status.json", json.dumps(
                {"state": "finished", "ended": 3.0, "epoch": config.epochs, "progress": 1.0}))
    return buffer.getvalue()


def test_a_file_written_by_version_one_loads_and_an_export_keeps_its_member_names(store,
                                                                                 tmp_path):
    configs = get_claim("accuracy").method_configs("cpu")
    runs = {f"old-{m}-{s}": (configs[m].replace(seed=s), MEANS[m] + s)
            for s in (0, 1) for m in MEANS}
    target = RunStore(tmp_path / "target")
    loaded = import_experiment(version_one_file(runs), store=target, teacher_token=TOKEN,
                               settings=settings())
    assert loaded.exported_at == 5.0 and sorted(target.run_ids()) == sorted(runs)
    for rid, (config, acc) in runs.items():
        assert target.read_config(rid) == config
        assert target.read_status(rid)["state"] == "finished"
        assert target.read_status(rid)["epoch"] == config.epochs
        assert target.read_summary(rid)["final_test_acc"] == pytest.approx(acc / 100)
        assert target.read_meta(rid)["label"] == "old" and target.read_meta(rid)["owner"] \
            == "student-01"
        assert target.read_records(rid, resolve=False) == run_records(acc, config.epochs)
    assert pooled_verdict(target, loaded)[0].seeds == (0, 1)
    # what this version exports has the same members, run by run
    with zipfile.ZipFile(io.BytesIO(export_experiment(target, loaded))) as z:
        names = sorted(z.namelist())
    assert names == sorted(["experiment.json", *(
        f"runs/{rid}/{name}" for rid in runs for name in
        ("config.json", "meta.json", "metrics.jsonl", "summary.json", "status.json"))])


@pytest.mark.parametrize("mangle, why", [
    (lambda files: {"x.txt": b"hello"}, "experiment.json is missing"),
    (lambda files: {**files, "experiment.json": b"{"}, "not valid JSON"),
    (lambda files: {**files, "experiment.json": json.dumps(
        {**json.loads(files["experiment.json"]), "version": 99}).encode()}, "version 99"),
    (lambda files: {**files, "experiment.json": json.dumps(
        {**json.loads(files["experiment.json"]), "runs": ["../../etc"]}).encode()},
     "list of runs is not valid"),
    (lambda files: {k: (b'{"epochs": "x"}' if k.endswith("config.json") else v)
                    for k, v in files.items()}, "epochs must be an integer"),
])
def test_a_bad_replay_file_is_refused_in_one_line_and_writes_nothing(store, tmp_path, mangle,
                                                                     why):
    fake_class(store, 2)
    with zipfile.ZipFile(io.BytesIO(export_experiment(store, experiment()))) as z:
        files = {n: z.read(n) for n in z.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, blob in mangle(files).items():
            z.writestr(name, blob)
    target = RunStore(tmp_path / "target")
    with pytest.raises(BadReplayFile, match=why):
        import_experiment(buffer.getvalue(), store=target, teacher_token=TOKEN,
                          settings=settings())
    with pytest.raises(BadReplayFile, match="not a zip"):
        import_experiment(b"PK-not-really", store=target, teacher_token=TOKEN,
                          settings=settings())
    assert target.run_ids() == []


# ---------------------------------------------------------------------------------------------
# the view model
# ---------------------------------------------------------------------------------------------


def test_the_class_verdict_says_what_it_rests_on_and_marks_only_the_viewers_seed(store):
    fake_class(store, 6, owner_of=lambda s: "alice" if s == 4 else f"student{s:02d}")
    configs = get_claim("accuracy").method_configs("cpu")
    fake_run(store, configs["norm"].replace(seed=6), 70.0, owner="zoe", state="running",
             epochs_done=3)
    cv = class_verdict(store, experiment(), viewer="alice")
    assert cv.seeds == 6 and cv.students == 6 and cv.mine == (4,)
    assert "rests on 6 seeds (0-5) from 6 students, at the cpu size" in cv.rests_on
    assert "finished runs only" in cv.rests_on and "1 seed still training (6)" in cv.rests_on
    assert [d.seed for d in cv.dots if d.mine] == [4, 4, 4]  # one dot per method
    assert {d.method for d in cv.dots} == {"SGD", "SAM-all", "SAM-ON"}
    assert len(cv.dots) == 18
    assert not any(d.mine for d in for_viewer(cv, None).dots)  # the projector: nobody's
    # the history's last point is the verdict's own interval
    last = {h.comparison: h.steps[-1] for h in cv.history}
    for part in cv.verdict.parts:
        step = last[part["comparison"]]
        assert step.seeds == 6 and (step.low, step.high) == tuple(part["ci95"])
    widths = [s.high - s.low for s in cv.history[1].steps]
    assert widths[-1] < widths[0]  # the interval narrows as seeds arrive


@pytest.mark.parametrize("seeds", [0, 3, 30, 500])
def test_the_power_sentence_agrees_with_its_numbers(seeds):
    ps = power_status("accuracy", "cpu", seeds)
    if ps.reached is None:
        assert seeds == 0 and "No seed yet" in ps.text
        return
    assert f"{ps.reached:.0%} power" in ps.text
    if ps.reached >= 0.8:
        assert ps.more == 0 and "80% reached" in ps.text
    elif ps.needed is not None:
        assert ps.more >= 1 and f"{ps.more} more seed" in ps.text
        assert f"({seeds + ps.more} in all)" in ps.text
    assert power_status("gamma-shift", "cpu", seeds).needed == 0  # no paper number


def test_seed_ranges():
    assert seed_ranges([0, 1, 2, 3, 4, 7, 9, 10]) == "0-4, 7, 9-10"
    assert seed_ranges([]) == "" and seed_ranges([5]) == "5"


# ---------------------------------------------------------------------------------------------
# the pages
# ---------------------------------------------------------------------------------------------

ROOM = "app_pages/room.py"
CLASS_VIEW = "app_pages/class_view.py"


@pytest.fixture
def page_env(clean_env, runs, monkeypatch):
    """The app's store (conftest.runs) on a server with the tests' teacher token."""
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TOKEN)
    return runs


def all_text(at: AppTest) -> str:
    """Every element the page sent (its protobufs as text, charts' data included) and its URL."""
    out: list[str] = [repr(dict(at.query_params))]

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def test_the_teacher_starts_it_on_the_room_page_and_students_add_seeds(page_env):
    teacher = goto(session(TOKEN), ROOM)
    assert teacher.button(key="class_start")
    teacher.selectbox(key="class_claim").select("accuracy")
    teacher.button(key="class_start").click().run()
    e = read_room(page_env).experiment
    assert e is not None and (e.claim, e.size, e.provisional) == ("accuracy", "cpu", False)
    assert teacher.button(key="class_stop")
    key = service.register_owner("alice", store=page_env)
    student = goto(session(owner="alice", key=key), "app_pages/home.py")
    student.button(key="class_add_seed_home").click().run()
    assert any("Added seed 0 for alice" in s.value for s in student.success)
    goto(student, "app_pages/claims.py").button(key="class_add_seed_claims").click().run()
    seeds = sorted((page_env.read_meta(r)["owner"], page_env.read_config(r).seed)
                   for r in page_env.run_ids())
    assert seeds == [("alice", 0)] * 3 + [("alice", 1)] * 3
    goto(teacher, ROOM).button(key="class_stop").click().run()
    assert read_room(page_env).experiment.stopped_at is not None
    goto(student, "app_pages/home.py")  # stopped: no more seeds
    assert "class_add_seed_home" not in [b.key for b in student.button]


def test_students_cannot_start_it_from_the_room_page(page_env):
    at = goto(session(owner="bob"), ROOM)
    assert not [b for b in at.button if b.key and b.key.startswith("class_")]
    assert read_room(page_env).experiment is None


def test_the_projector_page_shows_the_class_verdict_and_no_key(page_env):
    key = service.register_owner("alice", store=page_env)
    fake_class(page_env, 5, owner_of=lambda s: "alice" if s == 2 else f"student{s:02d}")
    start(page_env)
    for at, mine in ((session(owner="alice", key=key), True), (session(), False)):
        at = goto(at, CLASS_VIEW)
        assert [m.value for m in at.metric][:2] == ["5", "5"]  # seeds, students
        cv = class_verdict(page_env, read_room(page_env).experiment)
        boxes = [b.value for b in (*at.success, *at.warning, *at.error, *at.info)]
        assert any(cv.verdict.sentence in b for b in boxes)
        assert any(cv.rests_on in c.value for c in at.caption)
        assert any("Your seed: 2" in c.value for c in at.caption) == mine
        assert len(at.get("plotly_chart")) >= 2
        text = all_text(at)
        assert ("seed 2 (yours)" in text) == mine  # the chart's data are in the text
        assert key not in text and TOKEN not in text
        assert "student01" not in text  # no other student's name
