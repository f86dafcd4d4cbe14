"""Secrets and links, as a student who shares a link, or one who receives it, would meet them:
the owner key is read from ``?owner=&key=`` once, taken out of the address at once and kept in
the browser session only; no page shows it, no share link carries it (nor the name), and only
the one-time box after a first launch shows the link with the key. Parameters named like a
secret (``token``, ``Key``, ``teacher_token``...) are removed and never echoed. A first launch
that fails registers no name. The sidebar says who the user is after a launch from Claims and
while signed in as the teacher. Pages through app.py with AppTest and the real job service."""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import cancel_button, goto, link_key, rendered_text, visit
from support.configs import TINY
from support.teacher import TEACHER_TOKEN

from samon_app import identity_view as view
from samon_app import urlparams
from samon_core import claims, service
from samon_core.runs.ownerkeys import digests
from samon_core.runs.store import RunStore

HOME, LAUNCH, LIVE, COMPARE, PLAYGROUND, CLAIMS = (
    f"app_pages/{p}.py" for p in ("home", "launch", "live", "compare", "playground", "claims"))
ALL_PAGES = (HOME, LAUNCH, LIVE, COMPARE, PLAYGROUND, CLAIMS)
ROOM = "app_pages/room.py"  # the teacher's page: anyone else's link may still point at it
RAW_HTML = ("<script", "<img", "<b>")


def alice_with_a_run(runs: RunStore) -> tuple[str, str]:
    """alice (registered) with one queued run in group g1: (her key, the run id)."""
    key = runs.register_owner("alice")
    rid = service.submit(TINY.replace(method="base"), owner="alice", group="g1", store=runs,
                         owner_key=key)
    return key, rid


def assert_nowhere(at: AppTest, secret: str, where: str = "") -> None:
    """``secret`` is in no query parameter (name or value) and in no element of the page."""
    params = dict(at.query_params)
    assert secret not in repr(params), (where, params)
    assert secret not in rendered_text(at), where


# ---------------------------------------------------------------------------------------------
# the owner key leaves the address and stays in the session
# ---------------------------------------------------------------------------------------------


def test_the_key_leaves_the_address_and_no_page_shows_it(runs):
    key, rid = alice_with_a_run(runs)
    at = visit(HOME, owner="alice", key=key)
    assert "key" not in at.query_params
    assert any("You act as alice" in c.value for c in at.sidebar.caption)
    at.query_params["group"] = "g1"
    for path in (*ALL_PAGES, HOME, LIVE):
        goto(at, path)
        assert_nowhere(at, key, path)
        assert any("You act as alice" in c.value for c in at.sidebar.caption), path
    assert at.query_params["owner"] == "alice"  # the name stays; only the key goes
    assert cancel_button(at, rid).disabled is False  # the key lives in the session
    cancel_button(at, rid).click().run()
    assert not at.exception
    assert runs.read_status(rid)["state"] == "cancelled"
    assert_nowhere(at, key, "after the cancel")


def test_a_key_entered_directly_on_any_page_is_removed_there(runs):
    key, _ = alice_with_a_run(runs)
    for path in (*ALL_PAGES, ROOM):
        at = visit(path, owner="alice", key=key, group="g1")
        assert_nowhere(at, key, path)
        assert any("You act as alice" in c.value for c in at.sidebar.caption), path


def test_a_repeated_or_wrong_key_is_removed_and_a_later_bad_link_keeps_the_good_key(runs):
    key, rid = alice_with_a_run(runs)
    bob = runs.register_owner("bob")
    at = visit(LIVE, owner="alice", key=[bob, key], group="g1")  # the last one counts
    assert_nowhere(at, key)
    assert_nowhere(at, bob)
    assert cancel_button(at, rid).disabled is False
    at.query_params["key"] = bob  # a Back step to another link's address
    goto(at, LIVE)
    assert_nowhere(at, bob)
    assert any("key is not valid for alice" in w.value for w in at.warning)
    assert cancel_button(at, rid).disabled is False  # the session's own key is kept


def test_the_one_time_box_is_the_only_place_a_key_appears(runs):
    at = visit(LAUNCH, owner="dora", epochs="2")
    next(b for b in at.button if b.key == "launch_preset").click().run()
    assert not at.exception
    key = link_key(at)  # exactly one code block holds it
    assert "key" not in at.query_params
    shown = [c.value for c in at.code if key in c.value]
    assert shown == [view.link_query("dora", key)]
    for md in [*at.markdown, *at.caption, *at.sidebar.caption, *at.info, *at.success]:
        assert key not in md.value
    at.button(key="new_link_done").click().run()
    for path in ALL_PAGES:
        goto(at, path)
        assert_nowhere(at, key, path)


# ---------------------------------------------------------------------------------------------
# share links: the page's parameters, never the name or the key
# ---------------------------------------------------------------------------------------------


def share_links(at: AppTest) -> list[str]:
    """The share links a page shows: in ``st.code`` (Launch) or in the Playground's box."""
    boxes = [html.unescape(m) for el in at.get("html")
             for m in re.findall(r'data-base="([^"]*)"', el.proto.body)]
    return [c.value for c in at.code] + boxes


@pytest.mark.parametrize(("path", "query", "kept"), [
    (LAUNCH, {"epochs": "3", "seed": "7"}, ("epochs=3", "seed=7")),
    (PLAYGROUND, {"pg_lr": "0.05"}, ("pg_lr=0.05",)),
])
def test_share_links_hold_the_settings_without_the_name_or_key(runs, path, query, kept):
    key, _ = alice_with_a_run(runs)
    at = visit(path, owner="alice", key=key, token="S3CRET-token", **query)
    links = share_links(at)
    assert len(links) == 1, links
    for part in kept:
        assert part in links[0], links[0]
    for bad in ("owner", "key", key, "alice", "token", "S3CRET"):
        assert bad not in links[0], (bad, links[0])
    assert_nowhere(at, key)
    assert "copy it to share" in " ".join(c.value for c in at.caption)


def test_share_link_builder_drops_identity_and_secrets():
    params = {"owner": ["alice"], "key": ["K" * 22], "epochs": ["3"], "teacher_token": ["T"],
              "Key": ["K2"], "embed": ["true"], "methods": ["SGD", "SAM-ON"]}
    link = view.share_link("http://host:8501/launch?owner=alice&key=KKK#frag", params)
    assert link == "http://host:8501/launch?epochs=3&methods=SGD&methods=SAM-ON"
    assert view.share_link(None, {"owner": ["a"]}) == ""


# ---------------------------------------------------------------------------------------------
# parameters named like secrets: removed on every page, never echoed
# ---------------------------------------------------------------------------------------------

LOOKALIKES = {"token": "TOKEN-VALUE-1", "teacher_token": "TOKEN-VALUE-2", "Key": "KEY-VALUE-3",
              "owner_key": "KEY-VALUE-4", "password": "PASS-VALUE-5", "KEY": "KEY-VALUE-6"}


@pytest.mark.parametrize("path", ALL_PAGES)
def test_secret_lookalike_parameters_are_removed_and_not_echoed(runs, path):
    at = visit(path, **LOOKALIKES)
    for name, value in LOOKALIKES.items():
        assert name not in at.query_params, (path, name)
        assert_nowhere(at, value, path)
    warning = "\n".join(w.value for w in at.warning)
    assert "a secret never belongs in a link" in warning, path


def test_unknown_parameters_are_listed_without_their_value(runs):
    at = visit(LAUNCH, kye="MY-REAL-KEY-XYZ", epoch="3")  # typos of key and epochs
    assert_nowhere(at, "MY-REAL-KEY-XYZ")
    warning = "\n".join(w.value for w in at.warning)
    assert "kye" in warning and "did you mean" in warning


def test_no_declared_parameter_looks_like_a_secret():
    for name in urlparams.ALL_NAMES - {"key"}:
        assert not urlparams.looks_secret(name), name
    from samon_app.playground import KNOBS, param

    for knob in KNOBS:
        assert not urlparams.looks_secret(param(knob)), knob


def test_the_teacher_token_typed_in_a_link_is_removed(runs, monkeypatch):
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    at = visit(LIVE, teacher_token=TEACHER_TOKEN, token=TEACHER_TOKEN)
    assert_nowhere(at, TEACHER_TOKEN)
    assert not any("Signed in as teacher" in c.value for c in at.sidebar.caption)  # no sign-in


# ---------------------------------------------------------------------------------------------
# a failed first launch registers no name
# ---------------------------------------------------------------------------------------------


def _queue_down(monkeypatch) -> Callable[[], None]:
    """The database refuses every admission until the returned function is called."""
    admission = importlib.import_module("samon_core.service.admission")
    real = admission.admit

    def down(*_args, **_kwargs):
        raise service.DatabaseUnavailable("the database cannot be reached")

    monkeypatch.setattr(admission, "admit", down)
    return lambda: monkeypatch.setattr(admission, "admit", real)


@pytest.mark.parametrize("button", ["launch_preset", "launch_form"])
def test_a_failed_first_launch_registers_no_name(runs, monkeypatch, button):
    back_up = _queue_down(monkeypatch)
    at = visit(LAUNCH, owner="dora")
    next(b for b in at.button if b.key == button).click().run()
    assert not at.exception
    assert any("Not launched" in e.value for e in at.error)
    assert not runs.is_registered("dora") and runs.list_runs().empty
    assert not any("key=" in c.value for c in at.code)  # no link of a name that is not theirs
    assert any("dora is free" in c.value for c in at.sidebar.caption)
    back_up()  # the queue is back: the same name launches and registers now
    next(b for b in at.button if b.key == button).click().run()
    assert runs.is_registered("dora") and set(runs.list_runs()["owner"]) == {"dora"}


def test_a_failed_guest_launch_from_claims_registers_no_visitor(runs, monkeypatch):
    _queue_down(monkeypatch)
    at = visit(CLAIMS)
    at.button(key="launch_accuracy").click().run()
    assert not at.exception
    assert any("Not launched" in e.value for e in at.error)
    assert runs.list_runs().empty
    assert digests(runs.engine) == {}  # no visitor name was left registered
    at.run()
    assert at.sidebar.text_input(key="owner").value == "guest"


def test_a_launch_that_queued_some_runs_keeps_its_name_and_shows_the_link(runs, monkeypatch):
    real = service.submit_group

    def half(configs, **kw):  # one run gets in, then the queue goes down
        real(dict(list(configs.items())[:1]), **kw)
        raise service.QueueUnavailable("the queue went down")

    monkeypatch.setattr(service, "submit_group", half)
    at = visit(LAUNCH, owner="dora")
    next(b for b in at.button if b.key == "launch_preset").click().run()
    assert set(runs.list_runs()["owner"]) == {"dora"}
    assert runs.is_registered("dora")  # its run needs its owner's key: the name stays
    assert runs.owner_of_key(link_key(at)) == "dora"


# ---------------------------------------------------------------------------------------------
# the sidebar says who the user is (after a launch from Claims; as the teacher)
# ---------------------------------------------------------------------------------------------


def test_after_a_guest_launch_from_claims_the_sidebar_shows_the_visitor(runs):
    at = visit(CLAIMS)
    at.number_input(key="seeds_accuracy").set_value(1).run()
    assert any("seed 0 (3 runs" in c.value for c in at.caption)  # not "seeds 0-0"
    at.button(key="launch_accuracy").click().run()
    assert not at.exception, [e.message for e in at.exception]
    (name,) = set(runs.list_runs()["owner"])
    assert at.sidebar.text_input(key="owner").value == name
    notes = " ".join(c.value for c in at.sidebar.caption)
    assert f"You act as {name}" in notes and "You browse as guest" not in notes
    assert any(f"Queued 3 runs for {name}" in s.value for s in at.success)
    assert runs.owner_of_key(link_key(at)) == name  # the box with the link, once
    assert "key" not in at.query_params


def test_claims_launch_errors_are_escaped(runs, monkeypatch):
    def hostile(*_a, **_k):
        raise ValueError("<img src=x onerror=alert(1)> [x](javascript:alert(1))")

    monkeypatch.setattr(service, "submit_group", hostile)
    at = visit(CLAIMS, owner="erin")
    at.button(key="launch_accuracy").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Not launched" in errors and "&lt;img" in errors and "\\[x\\]" in errors
    assert not any(n in errors for n in RAW_HTML)
    assert not runs.is_registered("erin")


def test_signed_in_the_name_box_says_teacher_and_sign_out_restores_the_name(runs, monkeypatch):
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    at = visit(LAUNCH, owner="alice")
    at.sidebar.text_input(key="teacher_token_field").input(TEACHER_TOKEN)
    next(b for b in at.sidebar.button if b.label == "Sign in").click().run()
    assert not at.exception
    box = at.sidebar.text_input(key="owner_teacher")
    assert box.value == "teacher" and box.disabled
    assert not any(t.key == "owner" for t in at.sidebar.text_input)  # no 'guest' box beside it
    assert any("you launch as 'teacher'" in c.value for c in at.sidebar.caption)
    assert_nowhere(at, TEACHER_TOKEN)
    next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    at.run()
    assert at.sidebar.text_input(key="owner").value == "alice"


def test_seeds_text():
    from samon_app.formatting import seeds_text

    assert seeds_text(0, 1) == "seed 0" and seeds_text(0, 3) == "seeds 0-2"
    assert seeds_text(4, 2) == "seeds 4-5"
    assert claims.CLAIMS  # the page's card text uses it (test above)


def test_a_hostile_worker_error_is_shown_as_text(runs, monkeypatch):
    def broken(**_kw):
        raise RuntimeError("<img src=x onerror=alert(1)> [x](javascript:alert(1))")

    monkeypatch.setenv("SAMON_START_WORKERS", "1")
    monkeypatch.setattr(service, "ensure_workers", broken)
    at = visit(HOME)
    shown = " ".join(w.value for w in at.sidebar.warning)
    assert "Workers:" in shown and "&lt;img" in shown and "\\[x\\]" in shown
    assert not any(n in shown for n in RAW_HTML)
