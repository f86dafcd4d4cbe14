"""The developers' zoo of damaged runs (tests/support/damaged.py): one run per damaged field of
meta.json, summary.json, config.json, metrics.jsonl and the status the database keeps, per file
that is no regular file, and a run folder without a database row, beside healthy runs. The
listing names each damaged file's problem (and the missing row), the store's readers return only
well-typed fields (``samon_core.runs.fieldcheck``: the one check), every
page renders over the zoo without an exception and names the problem, the claims' verdicts are
computed beside any damaged run, and a failed run's reason is one line for everyone while its
traceback is its owner's (or the teacher's)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import APP, TIMEOUT
from support.configs import TINY
from support.damaged import (
    CASES,
    FIELD_CASES,
    LISTED,
    STATUS_CASES,
    build_zoo,
    case_id,
    damage,
)
from support.fakes import fake_claim_runs, fake_run, three_methods
from support.teacher import TEACHER_TOKEN

from samon_app.reader import RunReader
from samon_core import claims, service
from samon_core.runs.fieldcheck import FILE_FIELDS, check_record
from samon_core.runs.store import RunStore

HOME, LAUNCH, LIVE, COMPARE, CLAIMS, ROOM, PLAYGROUND = (
    f"app_pages/{p}.py" for p in ("home", "launch", "live", "compare", "claims", "room",
                                  "playground"))
RAW_HTML = ("<script", "<img")


@pytest.fixture
def zoo(runs) -> dict[str, str]:
    return build_zoo(runs, fake_run, three_methods())


def visit(path: str, token: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in query.items():
        at.query_params[name] = value
    if token is not None:
        at.session_state["teacher_token"] = token
    at.switch_page(path).run()
    assert not at.exception, (path, [e.message for e in at.exception])
    return at


def texts(at: AppTest) -> str:
    parts = [*at.error, *at.warning, *at.info, *at.markdown, *at.caption, *at.success]
    return "\n".join(str(p.value) for p in parts)


# ---------------------------------------------------------------------------------------------
# the listing and the readers
# ---------------------------------------------------------------------------------------------


def test_every_damaged_run_is_listed_with_its_problem(runs, zoo):
    df = runs.list_runs().set_index("run_id")
    assert set(zoo.values()) <= set(df.index)  # none hidden
    for case in LISTED:
        problem = df.loc[zoo[case], "problem"]
        assert isinstance(problem, str) and problem, case
    for file, field, raw in FIELD_CASES:
        problem = df.loc[zoo[case_id(file, field, raw)], "problem"]
        where = "the run's status in the database" if file == "status.json" else file
        assert f"{where}: {field} is not" in problem, (file, field, problem)
    assert "not in the database" in df.loc[zoo["database:no_row"], "problem"]
    assert "is not JSON" in df.loc[zoo["database:status_not_json"], "problem"]
    for name, rid in zoo.items():
        if name.startswith("healthy"):
            assert not isinstance(df.loc[rid, "problem"], str), name  # None (NaN in a frame)
        if name.startswith("healthy") or name in STATUS_CASES or name == \
                "database:status_not_json":  # read without the field (the state stays)
            assert df.loc[rid, "state"] == "finished", name
    created = [c for c in df["created"] if c is not None and c == c]
    assert all(isinstance(c, float) and 0 <= c < 1e11 for c in created)


def test_the_readers_return_only_well_typed_fields(runs, zoo):
    reader = RunReader(runs)
    for case, rid in zoo.items():
        for file, read in (("meta.json", runs.read_meta), ("status.json", runs.read_status),
                           ("summary.json", runs.read_summary)):
            try:
                data = read(rid) or {}
            except (ValueError, OSError):  # the whole file is damaged: the listing says so
                continue
            for name, check in FILE_FIELDS[file].items():
                assert name not in data or check(data[name]), (case, file, name)
        for rec in runs.read_records(rid):
            assert check_record(rec) == (rec, None), (case, rec)
        data = reader.get(rid)
        assert bool(data.problems) == case.startswith("metrics"), (case, data.problems)
        data.series("epoch", "epoch", "test_acc")  # and nothing raises on the way to a chart
        _ = data.epochs, data.steps, data.sharpness


def test_a_damaged_status_field_is_never_read_and_the_run_goes_on(runs):
    rid = fake_run(runs, TINY, state="running")
    damage(runs, rid, case_id("status.json", "interruptions", "[1]"))
    assert "interruptions" not in runs.read_status(rid)
    status = runs.write_status(rid, "running", epoch=1)
    assert "interruptions" not in status and status["epoch"] == 1
    damage(runs, rid, "database:status_not_json")  # the whole column: read as no fields
    assert runs.read_status(rid)["state"] == "running" and "epoch" not in runs.read_status(rid)
    assert runs.heartbeat(rid, epoch=2)["epoch"] == 2  # and the trainer's next write repairs it


# ---------------------------------------------------------------------------------------------
# every page over the zoo
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "query"), [
    (HOME, {}), (LAUNCH, {}), (PLAYGROUND, {}), (CLAIMS, {}), (COMPARE, {}),
    (COMPARE, {"group": "g1"}), (LIVE, {"group": "g1"}),
])
def test_every_page_renders_over_the_zoo(runs, zoo, path, query):
    at = visit(path, owner="bob", **query)
    assert at.title, path
    body = texts(at)
    assert not any(h in body for h in RAW_HTML)
    if path in (COMPARE, LIVE):  # each damaged run with its problem, none hidden
        errors = "\n".join(e.value for e in at.error)
        for case in LISTED:
            if path == LIVE and case in NO_GROUP:
                continue  # on Compare's list of all runs (the test above)
            rid = zoo[case]
            shown = rid in errors or rid in set(_table_ids(at))
            assert shown, (path, case)
    if path == LIVE:  # the runs of the group: damaged records named, per run
        warnings = "\n".join(w.value for w in at.warning)
        for case in CASES:
            if case.startswith("metrics"):
                assert zoo[case] in warnings, case


# damaged so that the run's comparison group is unknown: not on Live's page of group g1
NO_GROUP = {case_id("meta.json", "group", '{"a": 1}'), "meta.json:folder"}


def _table_ids(at: AppTest) -> list[str]:
    out = []
    for df in at.dataframe:
        if "run_id" in getattr(df.value, "columns", ()):
            out += list(df.value["run_id"])
    return out


def test_the_room_page_renders_over_the_zoo(runs, zoo, monkeypatch):
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    at = visit(ROOM, token=TEACHER_TOKEN)
    assert at.title and "Room" in at.title[0].value


def test_compare_names_the_damaged_field(runs, zoo):
    at = visit(COMPARE)
    errors = "\n".join(e.value for e in at.error)
    rid = zoo[case_id("meta.json", "created", '"x"')]
    line = next(ln for ln in errors.splitlines() if rid in ln)
    assert "created is not a time" in line


# ---------------------------------------------------------------------------------------------
# the claims' verdicts beside a damaged run
# ---------------------------------------------------------------------------------------------

ACCS = {"base": [50.0, 50.5, 49.5], "all": [53.0, 53.5, 52.5], "norm": [54.0, 54.4, 53.6]}


@pytest.mark.parametrize("case", list(CASES))
def test_claims_verdicts_survive_one_damaged_run(tmp_path, case):
    store = RunStore(tmp_path / "runs")
    ids = fake_claim_runs(store, "accuracy", ACCS)
    damage(store, ids[-1], case)  # SAM-ON's seed 2: the run the verdict would use
    for claim in claims.CLAIMS:
        got = claims.collect(store, claim.id, "cpu", 3)
        assert got.claim == claim.id
    got = claims.collect(store, "accuracy", "cpu", 3)
    assert got.verdict is not None  # the healthy runs still make a verdict


def test_the_claims_page_renders_when_its_chosen_runs_are_damaged(runs):
    ids = fake_claim_runs(runs, "accuracy", ACCS)
    picks = [c for c in CASES if c.startswith("metrics")][:6] + [
        case_id("summary.json", "epochs_done", '"y"'), case_id("meta.json", "created", '"x"'),
        "summary.json:folder"]
    for rid, case in zip(ids, picks, strict=True):
        damage(runs, rid, case)
    at = visit(CLAIMS)
    assert at.dataframe[0].value.shape[0] == len(claims.CLAIMS)


# ---------------------------------------------------------------------------------------------
# a failed run: its reason in one line for everyone, its traceback for its owner
# ---------------------------------------------------------------------------------------------

TRACE = "Traceback (most recent call last):\n  File \"/srv/secret/path.py\", line 3\nBoom"


def test_a_failed_runs_traceback_is_its_owners_only(runs, monkeypatch):
    key = runs.register_owner("alice")
    rid = service.submit(TINY.replace(method="base"), owner="alice", group="g1", store=runs,
                         owner_key=key)
    runs.write_status(rid, "failed", message="RuntimeError: out of memory\nwhile\tstep 3",
                      traceback=TRACE)
    others = visit(LIVE, group="g1", owner="bob")
    reason = next(e.value for e in others.error if "This run failed" in e.value)
    assert "\n" not in reason and "out of memory while step 3" in reason
    assert "secret/path" not in texts(others)
    assert not any("traceback" in x.label.lower() for x in others.expander)
    owner = visit(LIVE, group="g1", owner="alice", key=key)
    assert any("traceback" in x.label.lower() for x in owner.expander)
    assert any("secret/path" in c.value for c in owner.code)
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    teacher = visit(LIVE, token=TEACHER_TOKEN, group="g1")
    assert any("traceback" in x.label.lower() for x in teacher.expander)
    compare = visit(COMPARE, owner="bob")
    notes = list(compare.dataframe[0].value["note"])
    assert any("out of memory while step 3" in n and "\n" not in n for n in notes)
