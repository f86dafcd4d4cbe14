"""Who the user is in the app (app_pages/identity.py, samon_app/identity_view.py): an owner key in
the link (``?owner=NAME&key=KEY``) lets its holder act on their runs, a wrong key or a taken name
without its key shows the runs read-only, the first launch under a new name registers it and
shows the link once, ``guest`` only browses, and the teacher signs in with the token (never
shown). The pages run through app.py with AppTest and the real job service (SQLite queue, no
worker)."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import cancel_button, link_key, rendered_text, visit
from support.configs import TINY

from samon_app import identity_view as view
from samon_app import urlparams
from samon_app.identity_view import Standing
from samon_core import service
from samon_core.runs.owners import is_reserved
from samon_core.runs.store import RunStore

LIVE, LAUNCH = "app_pages/live.py", "app_pages/launch.py"
TOKEN = "correct-horse-battery-staple-42"


def queued_run(runs: RunStore, owner: str = "alice") -> tuple[str, str]:
    """A queued run of ``owner`` (registered here) in group g1: (run id, the owner's key)."""
    key = runs.register_owner(owner)
    rid = service.submit(TINY.replace(method="base"), owner=owner, group="g1", store=runs,
                         owner_key=key)
    return rid, key


def launch_preset(at: AppTest) -> AppTest:
    next(b for b in at.button if b.key == "launch_preset").click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in [*at.error, *at.sidebar.error])


# ---------------------------------------------------------------------------------------------
# the link's key
# ---------------------------------------------------------------------------------------------


def test_a_link_with_its_key_lets_its_owner_cancel(runs):
    rid, key = queued_run(runs)
    at = visit(LIVE, group="g1", owner="alice", key=key)
    assert cancel_button(at, rid).disabled is False
    assert "key" not in at.query_params  # read, then taken out of the address at once
    assert key not in rendered_text(at)  # nothing on the page shows it
    cancel_button(at, rid).click().run()
    assert not at.exception
    assert runs.read_status(rid)["state"] == "cancelled"


@pytest.mark.parametrize("wrong", ["bob", "not-a-key-at-all-123456", "no such key <b>"])
def test_a_wrong_key_warns_and_shows_the_runs_read_only(runs, wrong):
    rid, _ = queued_run(runs)
    key = runs.register_owner("bob") if wrong == "bob" else wrong
    at = visit(LIVE, group="g1", owner="alice", key=key)
    warnings = [w.value for w in at.warning]
    assert any("key is not valid for alice" in w and "read-only" in w for w in warnings)
    assert not any("ignored" in w for w in warnings)  # not listed among ignored parameters
    assert key not in rendered_text(at)
    button = cancel_button(at, rid)
    assert button.disabled and "read-only" in button.help.lower()
    assert "key" not in at.query_params  # a wrong key is not kept in the link


# ---------------------------------------------------------------------------------------------
# launching: a new name is registered (a guest gets one), a taken one is refused
# ---------------------------------------------------------------------------------------------


def test_a_first_launch_registers_the_name_and_shows_its_link_once(runs):
    at = launch_preset(visit(LAUNCH, owner="dora"))
    assert set(runs.list_runs()["owner"]) == {"dora"}
    key = link_key(at)
    assert runs.owner_of_key(key) == "dora"
    assert view.link_query("dora", key) in [c.value for c in at.code]  # AppTest has no URL
    assert any(view.KEEP_LINK in m.value for m in at.markdown)
    assert "key" not in at.query_params  # never in the address
    at.button(key="new_link_done").click().run()
    assert not any("key=" in c.value for c in at.code)  # dismissed: shown once
    assert "key" not in at.query_params and key not in rendered_text(at)
    assert any("You act as dora" in c.value for c in at.sidebar.caption)  # kept in the session


def test_a_taken_name_without_its_key_cannot_launch(runs):
    runs.register_owner("alice")
    at = visit(LAUNCH, owner="alice")
    taken = "alice is taken: you see alice's runs read-only"
    assert any(taken in c.value for c in at.sidebar.caption)
    button = at.button(key="launch_preset")  # refused before the click, with the reason
    assert button.disabled and taken in button.help
    assert runs.list_runs().empty


def test_a_guest_launch_gets_a_visitor_name_of_its_own_and_its_link(runs):
    at = visit(LAUNCH)
    assert any("first launch gives you a name" in c.value for c in at.sidebar.caption)
    launch_preset(at)
    owners = set(runs.list_runs()["owner"])
    assert len(owners) == 1
    name = owners.pop()
    assert re.fullmatch(r"visitor-\d{4}", name) and not runs.is_registered("guest")
    key = link_key(at)
    assert runs.owner_of_key(key) == name
    assert view.link_query(name, key) in [c.value for c in at.code]
    at.run()  # the next run: the name box shows the visitor's name, whose key the session holds
    assert at.sidebar.text_input(key="owner").value == name
    assert at.query_params["owner"] == name and "key" not in at.query_params
    assert any(f"You act as {name}" in c.value for c in at.sidebar.caption)


def test_a_name_registered_meanwhile_launches_nothing(runs, monkeypatch):
    at = visit(LAUNCH, owner="dora")

    def quicker(name: str, *, store=None) -> str:  # someone registers it first
        runs.register_owner(name)
        return runs.register_owner(name)

    monkeypatch.setattr(service, "register_owner", quicker)
    launch_preset(at)
    assert "already has an owner key" in errors(at)
    assert runs.list_runs().empty
    assert not any("key=" in c.value for c in at.code)  # no link box (the share link stays)


# ---------------------------------------------------------------------------------------------
# the teacher
# ---------------------------------------------------------------------------------------------


def sign_in(at: AppTest, token: str) -> AppTest:
    at.sidebar.text_input(key="teacher_token_field").input(token)
    assert token in rendered_text(at)  # the walk sees a widget's value (so it would see a leak)
    next(b for b in at.sidebar.button if b.label == "Sign in").click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_teacher_signs_in_and_may_cancel_anyones_run(runs, monkeypatch):
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TOKEN)  # the settings cache keys on SAMON_*
    rid, _ = queued_run(runs)
    at = visit(LIVE, group="g1")
    assert cancel_button(at, rid).disabled
    sign_in(at, "not-the-token-at-all")
    assert "Not the teacher token." in errors(at)
    assert "not-the-token-at-all" not in rendered_text(at)  # the field cleared itself
    assert cancel_button(at, rid).disabled
    sign_in(at, TOKEN)
    assert any("Signed in as teacher" in c.value for c in at.sidebar.caption)
    assert cancel_button(at, rid).disabled is False
    assert TOKEN not in rendered_text(at)
    assert TOKEN not in str(dict(at.query_params))
    cancel_button(at, rid).click().run()
    assert runs.read_status(rid)["state"] == "cancelled"
    assert TOKEN not in rendered_text(at)


def test_the_teacher_launches_as_teacher(runs, monkeypatch):
    monkeypatch.setenv("SAMON_TEACHER_TOKEN", TOKEN)
    at = sign_in(visit(LAUNCH), TOKEN)
    launch_preset(at)
    assert set(runs.list_runs()["owner"]) == {"teacher"}
    assert not runs.is_registered("teacher")


def test_no_teacher_token_on_the_server(runs):
    at = visit(LAUNCH)
    assert view.NO_TOKEN in "\n".join(c.value for c in at.sidebar.caption)
    assert not any(t.key == "teacher_token_field" for t in at.sidebar.text_input)


# ---------------------------------------------------------------------------------------------
# the pure parts
# ---------------------------------------------------------------------------------------------


def test_standing_of_each_kind_of_user():
    def s(name: str, teacher=False, has_key=False, registered=False) -> Standing:
        return view.standing(name, teacher=teacher, has_key=has_key, registered=registered)

    assert s("guest") is Standing.GUEST and s("Teacher") is Standing.RESERVED
    assert s("alice", registered=True) is Standing.TAKEN
    assert s("alice", has_key=True, registered=True) is Standing.OWN
    assert s("alice") is Standing.NEW
    assert s("guest", teacher=True) is Standing.TEACHER
    assert view.launch_refusal(Standing.NEW, "alice") is None
    assert "read-only" in view.launch_refusal(Standing.TAKEN, "alice")
    assert view.launch_refusal(Standing.OWN, "alice") is None
    assert view.read_only_text(Standing.OWN, "alice") is None
    assert "a\\_b" in view.sidebar_note(Standing.TAKEN, "a_b")  # names are escaped Markdown


def test_guest_and_teacher_are_reserved():
    assert is_reserved("guest") and is_reserved(" Guest ") and is_reserved("TEACHER")
    assert not is_reserved("alice")


def test_may_act_needs_a_requester_or_the_teacher():
    meta = {"owner": "alice", "requesters": [{"owner": "alice"}, {"owner": "bob"}]}
    assert view.may_act(meta, "bob", False) and not view.may_act(meta, "carol", False)
    assert not view.may_act(meta, None, False)  # a typed name without its key proves nothing
    assert view.may_act(None, None, True) and not view.may_act(None, "alice", False)
    assert view.may_act(["alice"], "alice", False)


def test_the_link_is_url_encoded():
    assert view.link_query("ann lee", "k-_1") == "?owner=ann+lee&key=k-_1"
    assert (view.full_link("http://host:8501/live?group=g#x", "al", "K")
            == "http://host:8501/live?owner=al&key=K")
    assert view.full_link(None, "al", "K") == "?owner=al&key=K"


def test_the_key_is_never_listed_among_ignored_parameters():
    for value in ["x", "<script>", "k" * 10_000]:
        assert urlparams.check_params({"key": [value]}, {}) == []
        assert urlparams.check_params({"key": [value, value]}, None) == []
