"""Hostile input for the pages (``streamlit.testing.v1.AppTest``, in-process): links with huge,
negative, NaN/inf, empty, unicode, 10,000-character, unknown and repeated query parameters,
HTML in labels and user names, a run database that does not answer (when the user launches or
cancels, or at all), and run folders that are damaged. Each case asserts that no exception
reaches the page, that ignored or refused input is named in a visible message, that nothing is
queued for a rejected input, and that no raw HTML from a user string reaches the rendered
Markdown.

Every page is entered directly, as a shared link would (``AppTest.switch_page`` before the first
run), through app.py so that the navigation and the sidebar run as in the app."""

from __future__ import annotations

import errno
import html
import importlib
import json
import os
import re
import time

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest
from support.apptest import APP, TIMEOUT
from support.configs import TINY
from support.fakes import fake_run, three_methods
from support.paths import REPO

from samon_app import urlparams
from samon_core.runs import database as db
from samon_core.runs.store import RunStore

LAUNCH, LIVE, COMPARE, HOME = (f"app_pages/{p}.py" for p in ("launch", "live", "compare", "home"))
HOSTILE = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
RAW_HTML = ("<script", "<img", "<b>")
HEADING = "Some parameters of this link were ignored"




def visit(path: str, **query: str | list[str]) -> AppTest:
    """Open ``path`` through app.py with ``query`` as a shared link would; no exception."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(path)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def rendered(at: AppTest) -> list[str]:
    """The Markdown of every text element (main area and sidebar)."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [t.value for t in at.title]
    parts += [s.value for s in at.success] + [t.value for t in at.toast]
    return [str(p) for p in parts]


def assert_no_raw_html(at: AppTest) -> None:
    for text in rendered(at):
        for needle in RAW_HTML:
            assert needle not in text, f"raw {needle!r} in {text[:200]!r}"
    for md in at.markdown:
        assert not md.proto.allow_html or not any(n in md.value for n in RAW_HTML)


def ignored(at: AppTest) -> str:
    """The warning that lists the ignored parameters ('' if there is none)."""
    return "\n".join(w.value for w in at.warning if HEADING in w.value)


def as_read(markdown: str) -> str:
    """Markdown text as the reader sees it: backslash escapes and entities resolved."""
    return html.unescape(markdown.replace("\\", ""))


def assert_ignored(at: AppTest, name: str, reason: str) -> None:
    text = as_read(ignored(at))
    line = next((ln for ln in text.splitlines() if f"**{name}**" in ln), None)
    assert line is not None, f"{name} not listed in {text!r}"
    assert reason in line, line
    assert_no_raw_html(at)


def click(at: AppTest, key: str) -> AppTest:
    next(b for b in at.button if b.key == key).click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


# ---------------------------------------------------------------------------------------------
# Launch: every number is converted and range-checked before its widget sees it
# ---------------------------------------------------------------------------------------------

BAD_LAUNCH = [
    ("epochs", "9" * 400, "too long"),
    ("epochs", "9" * 60, "in [1, 400]"),
    ("epochs", "-5", "in [1, 400]"),
    ("epochs", "nan", "not a whole number"),
    ("epochs", "inf", "not a whole number"),
    ("epochs", "", "empty"),
    ("epochs", "٣", "not a whole number"),
    ("epochs", "2.5", "not a whole number"),
    ("seed", "1_000", "not a whole number"),
    ("seeds", "11", "in [1, 10]"),
    ("lr", "1e400", "not a finite number"),
    ("lr", "NaN", "not a number"),
    ("lr", "-0.1", "in (0.0, 10.0]"),
    ("momentum", "1", "in [0.0, 1.0)"),
    ("rho_norm", "-1", "in [0.0, 100.0]"),
    ("batch_size", "1e3", "not a whole number"),
    ("variant", "x" * 10_000, "too long (10,000 characters)"),
    ("model", "resnet9999", "no model 'resnet9999'"),
    ("dataset", "imagenet", "no value 'imagenet'"),
    ("preset", IMG, "no preset"),
]


@pytest.mark.parametrize(("name", "value", "reason"), BAD_LAUNCH,
                         ids=[f"{n}={v[:12]}" for n, v, _ in BAD_LAUNCH])
def test_launch_ignores_a_bad_parameter_and_says_why(runs, name, value, reason):
    at = visit(LAUNCH, **{name: value})
    assert_ignored(at, name, reason)
    assert name not in at.query_params  # dropped from the link, the default is shown
    if name in ("epochs", "seed", "seeds", "lr", "momentum", "batch_size"):
        assert at.number_input(key=name).value == at.number_input(key=name).proto.default
    assert runs.list_runs().empty


def test_launch_valid_link_has_no_warning_and_launches_its_values(runs):
    at = visit(LAUNCH, epochs="3", seed="42", rho_norm="", methods=["SGD", "SAM-ON"],
               owner="erin")
    assert not ignored(at)
    assert at.number_input(key="epochs").value == 3
    click(at, "launch_form")
    configs = [runs.read_config(r) for r in runs.list_runs()["run_id"]]
    assert {c.epochs for c in configs} == {3} and {c.seed for c in configs} == {42}


def test_launch_unknown_and_repeated_keys(runs):
    at = visit(LAUNCH, epoch="3", batch_size=["64", "128"], **{"k" * 10_000: "1"})
    assert_ignored(at, "epoch", "did you mean: epoch -> epochs?")
    assert_ignored(at, "batch_size", "given 2 times")
    assert "no such parameter" in ignored(at) and "k" * 100 not in ignored(at)  # clipped
    batch = at.number_input(key="batch_size")
    assert batch.value == batch.proto.default


def test_launch_html_in_a_list_keeps_the_valid_values(runs):
    at = visit(LAUNCH, methods=["SGD", HOSTILE])
    assert_ignored(at, "methods", "no method")
    assert at.multiselect(key="methods").value == ["SGD"]
    assert "&lt;script&gt;" in ignored(at)  # shown, as text


def test_launch_many_bad_parameters_are_listed_once_and_counted(runs):
    bad = {f"x{i}": "1" for i in range(15)}
    at = visit(LAUNCH, **bad)
    assert len([w for w in at.warning if HEADING in w.value]) == 1
    assert "and 5 more" in ignored(at)


def test_launch_ignored_list_stays_while_editing_and_goes_with_the_page(runs):
    at = visit(LAUNCH, epochs="nan")
    at.number_input(key="seed").set_value(3).run()
    assert "**epochs**" in ignored(at)  # still there after an edit of the form
    at.switch_page(HOME).run()
    assert not ignored(at)


# ---------------------------------------------------------------------------------------------
# Launch while the database or the store is down; an invalid user name
# ---------------------------------------------------------------------------------------------

SECRET = "hunter2"  # the database password: never on a page
DOWN_URL = f"postgresql+psycopg://samon:{SECRET}@127.0.0.1:9/samon"  # nothing listens on port 9


def _refused() -> sa.exc.OperationalError:
    """What SQLAlchemy raises when the PostgreSQL server stops answering mid-request."""
    return sa.exc.OperationalError("INSERT INTO runs ...", {}, Exception(
        'connection to server at "db", port 5432 failed: Connection refused'))


def _admission_fails(monkeypatch, error: BaseException) -> None:
    """The admission's transaction fails with ``error`` (the database went away after the page
    had read it)."""
    admission = importlib.import_module("samon_core.service.admission")

    def down(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(admission, "admit", down)


@pytest.mark.parametrize("button", ["launch_form", "launch_preset"])
def test_launch_while_the_database_is_down(runs, monkeypatch, button):
    _admission_fails(monkeypatch, _refused())
    at = click(visit(LAUNCH, owner="erin"), button)
    errors = " ".join(e.value for e in at.error)
    assert "Not launched" in errors and "did not answer" in errors and "Connection refused" in \
        errors
    assert at.title[0].value == "Launch a comparison"  # stayed on the page
    assert runs.list_runs().empty and runs.run_ids() == []  # its folders went again


def test_launch_while_the_store_cannot_be_written(runs, monkeypatch):
    _admission_fails(monkeypatch, OSError(errno.ENOSPC, "No space left on device",
                                          "<b>runs</b>"))
    at = click(visit(LAUNCH, owner="erin"), "launch_form")
    assert any("the disk is full" in e.value for e in at.error), [e.value for e in at.error]
    assert_no_raw_html(at)
    assert runs.list_runs().empty


def test_home_quick_demo_while_the_database_is_down(runs, monkeypatch):
    _admission_fails(monkeypatch, _refused())
    at = visit(HOME, owner="erin")
    next(b for b in at.button if "quick demo" in b.label.lower()).click().run()
    assert not at.exception
    assert any("Not launched" in e.value and "did not answer" in e.value for e in at.error)
    assert runs.list_runs().empty


@pytest.mark.parametrize("path", [HOME, LAUNCH, LIVE, COMPARE, "app_pages/claims.py",
                                  "app_pages/class_view.py", "app_pages/playground.py"])
def test_every_page_says_in_one_line_that_the_database_does_not_answer(runs, monkeypatch, path):
    monkeypatch.setenv("SAMON_DATABASE_URL", DOWN_URL)
    at = visit(path, owner="erin", group="g1")
    assert [e.value for e in at.error] == [
        "The run database postgresql+psycopg://samon:\\*\\*\\*@127.0.0.1:9/samon does not "
        "answer (connection failed: connection to server at \"127.0.0.1\", port 9 failed: "
        "Connection refused). Runs cannot be shown or launched until it does; reload the page "
        "then."]
    assert SECRET not in " ".join(rendered(at))


@pytest.mark.parametrize("name", [HOSTILE, "a\nb", "x" * 10_000, "-leading-dash", "tab\tname"])
def test_invalid_owner_in_the_link_is_ignored(runs, name):
    at = visit(LAUNCH, owner=name)
    assert_ignored(at, "owner", "not a valid user name" if len(name) < 200 else "too long")
    assert at.sidebar.text_input(key="owner").value == "guest"


def test_invalid_owner_typed_in_the_sidebar_is_refused(runs):
    at = visit(LAUNCH)
    at.sidebar.text_input(key="owner").input(HOSTILE).run()
    assert any("user name" in e.value for e in at.sidebar.error)
    button = at.button(key="launch_form")  # refused before the click, with the reason
    assert button.disabled and "name" in (button.help or "") and "sidebar" in button.help
    assert runs.list_runs().empty
    assert_no_raw_html(at)


def test_owner_names_must_match_in_full():
    from samon_app.owner import clean_owner
    from samon_core.runs.owners import OWNER_NAME_RE

    assert clean_owner("alice") == ("alice", None) and clean_owner(" bob ")[0] == "bob"
    assert OWNER_NAME_RE.fullmatch("alice\n") is None  # "$" of a .match would let it pass
    for bad in ("a\nb", "al\x00ice", HOSTILE, "x" * 41, "-dash", "tab\tname"):
        name, error = clean_owner(bad)
        assert error and name == "guest", bad


# ---------------------------------------------------------------------------------------------
# Live and Compare: their parameters, failures and warnings, damaged runs
# ---------------------------------------------------------------------------------------------


def _group(runs: RunStore, **kw) -> list[str]:
    return [fake_run(runs, cfg, **kw) for cfg in three_methods().values()]


@pytest.mark.parametrize(("query", "name", "reason"), [
    ({"group": "nosuchgroup"}, "group", "no comparison"),
    ({"group": "g" * 10_000}, "group", "too long"),
    ({"group": ["g1", "g1"]}, "group", "given 2 times"),
    ({"view": "<b>bold</b>"}, "view", "no view"),
    ({"view": ""}, "view", "empty"),
    ({"zoom": "2"}, "zoom", "no such parameter"),
])
def test_live_bad_parameters(runs, query, name, reason):
    _group(runs)
    at = visit(LIVE, **query)
    assert_ignored(at, name, reason)


def test_live_shows_why_runs_failed_and_escapes_it(runs):
    fake_run(runs, TINY.replace(method="base"), state="failed", epochs_done=1,
             message=f"RuntimeError: {IMG} [click](javascript:alert(1))")
    at = visit(LIVE, group="g1", owner="alice")
    errors = " ".join(e.value for e in at.error)
    assert "This run failed: RuntimeError:" in errors and "&lt;img" in errors
    assert "\\[click\\]" in errors  # no link either
    assert_no_raw_html(at)


def test_finished_run_with_a_warning_says_so_on_live_and_compare(runs):
    warning = ("the training loss never fell below its first value (4.6); the learning rate "
               "may be too high")
    rid = fake_run(runs, TINY.replace(method="base"))
    runs.write_summary(rid, {"state": "finished", "final_test_acc": 0.1, "epochs_done": 2,
                             "warning": warning})
    at = visit(LIVE, group="g1")
    assert any("never fell below its first value" in w.value for w in at.warning)
    at = visit(COMPARE)
    notes = list(at.dataframe[0].value["note"])
    assert any("learning rate may be too high" in n for n in notes), notes


def test_compare_table_says_why_runs_failed(runs):
    fake_run(runs, TINY.replace(method="sam", scope="all"), state="diverged", epochs_done=1,
             message="diverged: the loss became nan at epoch 2")
    at = visit(COMPARE)
    assert "the loss became nan" in " ".join(at.dataframe[0].value["note"])


def _damage(runs: RunStore, how: str) -> str:
    rid = fake_run(runs, TINY.replace(method="sam", scope="norm", seed=7), owner="alice",
                   group="g1")
    folder = runs.run_dir(rid)
    if how == "config_dir":
        (folder / "config.json").unlink()
        (folder / "config.json").mkdir()
    elif how == "no_row":  # a folder the database does not know (a submit cut short), old
        with db.writing(runs.engine) as conn:
            conn.execute(db.runs.delete().where(db.runs.c.run_id == rid))
        old = time.time() - 3600
        os.utime(folder, (old, old))
    elif how == "corrupt_meta":
        (folder / "meta.json").write_text('{"owner": "alice", "label": "' + HOSTILE)
    elif how == "bad_config_label":  # a config of another version, a hostile label
        (folder / "config.json").write_text(json.dumps({"epochs": 2, "from_the_future": 1}))
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, "label": HOSTILE}))
    return rid


@pytest.mark.parametrize("how", ["config_dir", "no_row", "corrupt_meta", "bad_config_label"])
def test_damaged_run_is_shown_on_every_page(runs, how):
    _group(runs)
    rid = _damage(runs, how)
    for path in (COMPARE, LIVE, LAUNCH, HOME):
        at = visit(path, group="g1", owner="alice")
        assert_no_raw_html(at)
    at = visit(COMPARE, owner="alice")
    assert any(rid in e.value and "damaged" in e.value for e in at.error)  # not hidden
    if how == "no_row":
        assert any("not in the database" in e.value for e in at.error)


@pytest.mark.parametrize("how", ["config_dir", "bad_config_label", "no_row"])
def test_damaged_run_can_be_deleted_by_its_owner(runs, how):
    key = runs.register_owner("alice")  # before her run: a name that owns runs is not registered
    rid = _damage(runs, how)
    at = visit(COMPARE, owner="bob")
    assert next(b for b in at.button if b.key == f"compare_damaged_delete_{rid}").disabled
    at = visit(COMPARE, owner="alice", key=key)  # alice's link
    assert any("is damaged" in e.value for e in at.error)
    click(at, f"compare_damaged_delete_{rid}")
    assert rid not in set(runs.list_runs()["run_id"]) and not runs.run_dir(rid).exists()


def test_damaged_run_in_a_live_group_is_shown_with_its_problem(runs):
    key = runs.register_owner("alice")  # before her run, as a student's first launch does
    rid = _damage(runs, "config_dir")
    at = visit(LIVE, group="g1", owner="alice", key=key)
    assert any(rid in e.value and "damaged" in e.value for e in at.error)
    assert not next(b for b in at.button if b.key == f"live_damaged_delete_{rid}").disabled


def test_run_with_corrupt_meta_cannot_be_deleted_by_a_name(runs):
    rid = _damage(runs, "corrupt_meta")
    at = visit(COMPARE, owner="alice")
    assert any(rid in e.value for e in at.error)
    assert next(b for b in at.button if b.key == f"compare_damaged_delete_{rid}").disabled


@pytest.mark.parametrize(("query", "name", "reason"), [
    ({"c_metric": "bogus"}, "c_metric", "no metric 'bogus'"),
    ({"c_metric": "9" * 10_000}, "c_metric", "too long"),
    ({"f_owner": HOSTILE}, "f_owner", "no run with"),
    ({"f_state": ["finished", "exploded"]}, "f_state", "'exploded'"),
    ({"f_model": "x" * 5000}, "f_model", "too long"),
])
def test_compare_bad_parameters(runs, query, name, reason):
    _group(runs)
    at = visit(COMPARE, **query)
    assert_ignored(at, name, reason)
    assert at.dataframe  # the table is still there


def test_compare_filter_on_an_empty_store(runs):
    at = visit(COMPARE, f_model="tiny_resnet")
    assert_ignored(at, "f_model", "no run with")


# ---------------------------------------------------------------------------------------------
# Home and the whole app
# ---------------------------------------------------------------------------------------------


def test_home_ignores_unknown_keys_but_keeps_those_of_other_pages(runs):
    at = visit(HOME, zzz="1", epochs="nan", embed="true")
    assert_ignored(at, "zzz", "no such parameter")
    assert "**epochs**" not in ignored(at) and "embed" not in ignored(at)
    at.switch_page(LAUNCH).run()  # the link's epochs is checked where it is used
    assert_ignored(at, "epochs", "not a whole number")


def test_all_pages_with_a_hostile_everything_link(runs):
    _group(runs)
    query = {"owner": HOSTILE, "group": IMG, "view": HOSTILE, "c_metric": IMG,
             "epochs": "1e999", "lr": "-inf", "methods": [HOSTILE, IMG], HOSTILE: IMG}
    for path in (HOME, LAUNCH, LIVE, COMPARE):
        at = visit(path, **query)
        assert ignored(at), path
        assert_no_raw_html(at)
    assert len(runs.list_runs()) == 3  # nothing queued


# ---------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------


def test_md_escape_leaves_no_markup():
    from samon_app.markup import color_dot, md_escape

    out = md_escape(f"{HOSTILE} **b** [x](javascript:1) :red[r] $x$ `c` | # h\nnext")
    for raw in ("<script", "**b**", "[x]", ":red[", "$x$", "`c`", "\n"):
        assert raw not in out, raw
    assert md_escape("- item").startswith("\\-")
    assert len(md_escape("x" * 10_000)) <= 200
    assert color_dot('red" onload="x') == ':color[●]{foreground="#888888"}'
    assert color_dot("#e8590c") == ':color[●]{foreground="#e8590c"}'


def test_declared_parameters_match_the_pages():
    """Every parameter a page binds or reads is declared in urlparams (Live's views and
    Compare's metrics and filters are declared there and read by the pages)."""
    launch = urlparams.launch_params(["p"])
    source = (REPO / LAUNCH).read_text()
    for key in launch:
        assert f'"{key}"' in source or key.startswith("rho_"), key
    pages = {LIVE: urlparams.live_params(()), COMPARE: urlparams.compare_params({})}
    for path, params in pages.items():  # names a page reads by hand are declared too
        for name in re.findall(r'query_params(?:\.get)?\(?\[?"(\w+)"', (REPO / path).read_text()):
            assert name in params, (path, name)


def test_live_cancel_while_the_database_is_down(runs, monkeypatch):
    from samon_core import service

    key = runs.register_owner("alice")
    rid = service.submit(TINY.replace(method="base"), owner="alice", group="g1", store=runs,
                         owner_key=key)
    control = importlib.import_module("samon_core.service.control")

    def down(*_args, **_kwargs):
        raise _refused()

    monkeypatch.setattr(control, "_cancel_as", down)
    at = visit(LIVE, group="g1", owner="alice", key=key)
    at = click(at, f"cancel_{rid}")
    assert any("did not answer" in e.value for e in at.error), [e.value for e in at.error]
    assert runs.read_status(rid)["state"] == "queued"
