"""Hostile owner names: one name is one person everywhere (issue 18, item 4; reserved names of
item 3).

The corpus: spellings of one name (case, blanks, full-width letters), look-alikes (Cyrillic
``а``), invisible characters (zero-width space, a bidi override), markup, control characters,
the empty name and absurd lengths. Every entry point takes a name through the one rule
(``samon_core.runs.owners.normalize_owner_name``): the service's submit and register, the CLI, the
app's name box. Spellings of one name must be one owner for keys, per-owner limits and the fair
queue; names stored before the rule must still resolve.
"""

from __future__ import annotations

import json

import pytest
from support.configs import tiny_config

from samon_core import cli, service
from samon_core.runs import database as db
from samon_core.runs import keys, ownerkeys
from samon_core.runs.importer import KEYS_FILE
from samon_core.runs.owners import BadOwnerName, normalize_owner_name
from samon_core.runs.store import RunStore
from samon_core.service.settings import load_settings

TINY = tiny_config()
MAX_ERROR_CHARS = 1500

# (spelling, its normal form)
SAME_NAME = [
    ("alice", "alice"),
    ("Alice", "alice"),
    ("ALICE", "alice"),
    ("alice ", "alice"),
    ("  Alice\t", "alice"),
    ("\uff21lice", "alice"),  # full-width A: NFKC makes it a Latin A
    ("Jane Doe", "jane-doe"),  # a blank inside becomes '-'
    ("jane\u00a0doe", "jane-doe"),  # a no-break space is a blank too
    ("Stra\u00dfe", "strasse"),  # case folding, not lower()
]

# (hostile text, what the refusal must name)
HOSTILE = [
    ("\u0430lice", "CYRILLIC SMALL LETTER A"),  # looks exactly like 'alice'
    ("b\u03bfb", "GREEK SMALL LETTER OMICRON"),
    ("alice\u200b", "ZERO WIDTH SPACE"),
    ("\u202eecila", "RIGHT-TO-LEFT OVERRIDE"),
    ("al\u00adice", "SOFT HYPHEN"),
    ("<script>alert(1)</script>", "'<' is not allowed"),
    ("", "empty"),
    ("   ", "empty"),
    ("al\x00ice", "control character"),
    ("a\nb", "control character"),
    ("x" * 100_000, "100000 characters long"),
    ("x" * 41, "at most 40"),
    ("-dash", "start with a letter or digit"),
    ("../alice", "'/' is not allowed"),
    ("alice;rm", "';' is not allowed"),
]


def settings(**kw):
    return load_settings(environ={}, **kw)


@pytest.fixture
def store(tmp_path, clean_env):
    return RunStore(tmp_path / "runs")


@pytest.mark.parametrize(("spelling", "normal"), SAME_NAME)
def test_every_spelling_of_a_name_has_one_normal_form(spelling, normal):
    assert normalize_owner_name(spelling) == normal
    assert normalize_owner_name(normal) == normal  # idempotent


@pytest.mark.parametrize(("text", "why"), HOSTILE)
def test_hostile_names_are_refused_saying_why_in_one_short_line(text, why):
    with pytest.raises(BadOwnerName) as info:
        normalize_owner_name(text)
    message = str(info.value)
    assert why in message and "\n" not in message and len(message) < MAX_ERROR_CHARS
    assert why in info.value.reason and text not in info.value.reason or not text.strip()


@pytest.mark.parametrize("value", [None, 123, b"alice", ["alice"]])
def test_a_name_that_is_not_text_is_refused(value):
    with pytest.raises(BadOwnerName, match="is text"):
        normalize_owner_name(value)


@pytest.mark.parametrize(("text", "why"), HOSTILE)
def test_every_entry_point_refuses_a_hostile_name_and_creates_nothing(store, text, why,
                                                                      capsys):
    from samon_app.owner import clean_owner

    s = settings()
    with pytest.raises(ValueError, match="invalid owner name"):
        service.submit(TINY, owner=text, store=store, settings=s)
    with pytest.raises(ValueError, match="invalid owner name"):
        service.submit_group({"a": TINY}, owner=text, store=store, settings=s)
    with pytest.raises(ValueError, match="invalid owner name"):
        service.register_owner(text, store=store, settings=s)
    if "\x00" not in text:  # argv cannot hold NUL
        assert cli.main(["owner", "register", "--runs-dir", str(store.root), "--", text]) == 2
        err = capsys.readouterr().err
        assert err.startswith("samon: error: invalid owner name") and err.count("\n") == 1
    name, error = clean_owner(text)  # the app's name box: the service's own reason
    if text.strip():
        assert name == "guest" and error is not None and why in error
    assert store.run_ids() == []
    assert ownerkeys.digests(store.engine) == {}


def test_spellings_of_a_registered_name_are_that_owner(store):
    s = settings()
    key = service.register_owner("Alice", store=store, settings=s)
    assert store.owner_of_key(key) == "alice"
    for spelling in ("alice", "ALICE", "alice ", "\uff21lice"):
        assert store.is_registered(spelling)
        with pytest.raises(service.NameTaken, match="already has an owner key"):
            service.register_owner(spelling, store=store, settings=s)
        with pytest.raises(service.NotAllowed, match="is registered"):  # no key: not alice
            service.submit(TINY, owner=spelling, store=store, settings=s)
    rid = service.submit(TINY, owner="\uff21LICE ", owner_key=key, store=store, settings=s)
    assert store.read_meta(rid)["owner"] == "alice"
    assert store.read_meta(rid)["requesters"][0]["owner"] == "alice"
    assert service.cancel(rid, owner_key=key, store=store, settings=s) == "cancelled"


@pytest.mark.parametrize("name", ["teacher", "Teacher", " TEACHER ", "guest", "Guest", "cli",
                                  "CLI", " cli "])
def test_reserved_names_cannot_be_registered_in_any_spelling(store, name):
    with pytest.raises(service.NameTaken, match="is reserved"):
        service.register_owner(name, store=store, settings=settings())
    assert ownerkeys.digests(store.engine) == {}


def test_lim_LIM_and_lim_blank_are_one_owner_for_the_limit_and_the_queue(store):
    """The audit's reproduction: each spelling got its own per-owner quota."""
    s = settings(max_queued_per_owner=1)
    service.submit(TINY, owner="lim", store=store, settings=s)
    for i, spelling in enumerate(("Lim", "LIM", "lim ")):
        with pytest.raises(service.LimitExceeded, match="max_queued_per_owner"):
            service.submit(TINY.replace(seed=10 + i), owner=spelling, store=store, settings=s)
    assert len(store.run_ids()) == 1


def _hand_written_run(root, owner: str, seed: int, started: float, state: str = "running"
                      ) -> str:
    """A run folder of the files era whose meta.json was written before names were normalised
    (owner as typed), with its status.json: the database imports it when the store opens."""
    rid = RunStore(root).create_run(TINY.replace(seed=seed), {"owner": "placeholder"},
                                    admit=False)  # the folder only: no database yet
    folder = root / rid
    meta = json.loads((folder / "meta.json").read_text())
    meta["owner"] = owner
    meta["requesters"] = [{"owner": owner, "group": "", "time": started}]
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "status.json").write_text(json.dumps({"state": state, "started": started,
                                                    "queued_at": started}))
    return rid


def test_names_stored_before_normalisation_count_as_one_owner(tmp_path, clean_env):
    root = tmp_path / "runs"
    now = 1_000_000.0
    for seed, spelling in enumerate(("Lim", "LIM", "lim ")):
        _hand_written_run(root, spelling, seed, started=now - 100)
    store = RunStore(root)
    rows = db.run_rows(store.engine)
    # one owner for the fair queue (it groups runs by this column) and for the limits
    assert len(rows) == 3 and {r["owner"] for r in rows} == {"lim"}
    assert {tuple(r["requesters"]) for r in rows} == {("lim",)}
    with pytest.raises(service.LimitExceeded, match="'lim' has 3 runs"):
        service.submit(TINY.replace(seed=9), owner="LIM", store=store,
                       settings=settings(max_queued_per_owner=3))


def test_an_old_key_file_and_old_meta_still_resolve(tmp_path, clean_env):
    """A key file and a run written before the rule ('Alice'): her key still proves her name,
    in its normal form, and still cancels her run."""
    root = tmp_path / "runs"
    root.mkdir(parents=True)
    key = keys.new_key()
    (root / KEYS_FILE).write_text(json.dumps({"format": 1, "owners": {
        "Alice": {"digest": keys.digest(key), "created": 1.0},
        "bad\u200bname": {"digest": keys.digest(keys.new_key()), "created": 2.0}}}))
    rid = _hand_written_run(root, "Alice", 1, started=1.0, state="queued")
    store = RunStore(root)
    assert store.owner_of_key(key) == "alice" and store.is_registered("ALICE")
    with pytest.raises(service.NameTaken):
        service.register_owner("alice", store=store, settings=settings())
    assert service.cancel(rid, owner_key=key, store=store, settings=settings()) == "cancelled"
    # the old file is left as it was; a name without a normal form proves nothing
    assert "Alice" in json.loads((root / KEYS_FILE).read_text())["owners"]
    assert not store.is_registered("bad\u200bname")
    assert set(ownerkeys.digests(store.engine)) == {"alice"}


def test_two_old_spellings_of_one_name_give_it_to_the_earlier(store):
    store.root.mkdir(parents=True)
    first, second = keys.new_key(), keys.new_key()
    (store.root / KEYS_FILE).write_text(json.dumps({"format": 1, "owners": {
        "Jane Doe": {"digest": keys.digest(second), "created": 20.0},
        "jane-doe": {"digest": keys.digest(first), "created": 10.0}}}))
    assert store.owner_of_key(first) == "jane-doe"
    assert store.owner_of_key(second) is None  # one name, one person


def test_the_cli_records_the_normal_form(store, capsys):
    assert cli.main(["owner", "register", "  Bob ", "--runs-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("owner: bob\n") and "?owner=bob&key=" in out


def test_the_app_says_why_a_reserved_name_is_reserved():
    """'cli' typed in the sidebar is reserved for the command line's runs, not 'the teacher's
    name': the sentence comes from the library's reason."""
    from samon_app.identity_view import Standing, sidebar_note, standing
    from samon_core.runs.owners import why_reserved

    for name, then in (("cli", "Pick another name."),
                       ("teacher", "Sign in as the teacher, or pick another name.")):
        s = standing(name, teacher=False, has_key=False, registered=False)
        note = sidebar_note(s, name)
        assert s is Standing.RESERVED and note.endswith(then) and why_reserved(name) in note
    assert "teacher" not in sidebar_note(Standing.RESERVED, "cli").split(":")[0]
