"""The database's password never reaches a student, a page or a log (issue 18, item 2; issue 24).

Since issue 24 one database holds the runs and the queue, and several machines share it through
``SAMON_DATABASE_URL`` (``postgresql+psycopg://lab:PASSWORD@host/samon``). A database that does
not answer, and mistyped or malformed URLs, are played through every path that talks about the
database: the one function that renders a URL for humans, the database layer's errors
(``DatabaseUnavailable``, the refusal of an unusable URL), the settings (repr, the worker pool's
environment, errors from the environment and from ``samon.toml``), the command line, real worker
processes (their output and every file of the run store), and the Launch page and sidebar rendered
by ``AppTest``. Each is searched for the password and for the pieces a parser may cut it into;
each must still name the server (``postgresql+psycopg://lab:***@127.0.0.1...``) so that the check
cannot pass by saying nothing.
"""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from streamlit.testing.v1 import AppTest
from support.configs import tiny_config
from support.paths import REPO
from support.postgres_server import free_port

from samon_core import service
from samon_core.runs import database as db
from samon_core.runs.redact import display_url, redact, url_secrets
from samon_core.runs.store import RunStore
from samon_core.service.settings import load_settings

# Letters and digits only: Markdown escaping cannot hide a leak from the search.
PASSWORD = "Pw7hostileZ9k2q"

APP = str(REPO / "app.py")
SERVER = "postgresql+psycopg://lab:***@127.0.0.1"  # how every message must name the server


def unreachable_url(password: str = PASSWORD) -> str:
    return f"postgresql+psycopg://lab:{password}@127.0.0.1:{free_port()}/samon"  # nobody listens


_PORT = free_port()  # nothing listens there either: a URL that parses tries it and is refused
# A mistyped scheme, a password with an unescaped '/' (SQLAlchemy and libpq then disagree on
# where it ends), a bad port, a broken IPv6 host, a trailing space, a dialect SQLAlchemy does not
# know ('postgres' is Heroku's spelling) and a scheme that is no database at all.
MALFORMED = [
    f"postgresql+psycopg//lab:{PASSWORD}@127.0.0.1:{_PORT}/samon",
    f"postgresql+psycopg://lab:ab/{PASSWORD}@127.0.0.1:{_PORT}/samon",
    f"postgresql+psycopg://lab:{PASSWORD}@127.0.0.1:notaport/samon",
    f"postgresql+psycopg://lab:{PASSWORD}@[::1/samon",
    f"postgresql+psycopg://lab:{PASSWORD}@127.0.0.1:{_PORT}/samon ",
    f"postgres://lab:{PASSWORD}@127.0.0.1:{_PORT}/samon",
    f"http://lab:{PASSWORD}@127.0.0.1:{_PORT}/samon",
]
UNPARSABLE = [MALFORMED[0], MALFORMED[2], MALFORMED[5]]  # refused before any connection


def assert_clean(text: str, password: str = PASSWORD) -> None:
    """No trace of the password (nor of its longer pieces) in ``text``, as read."""
    shown = html.unescape(text.replace("\\", ""))
    for secret in (password, *url_secrets(f"postgresql://lab:{password}@h")):
        assert secret not in shown, f"{secret!r} leaked in {shown[:600]!r}"


@pytest.fixture(autouse=True)
def _env(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------------------------------------
# the one function that renders a URL for humans
# ---------------------------------------------------------------------------------------------

DISPLAYED = [
    # as SQLAlchemy's URL.render_as_string(hide_password=True) shows them
    (f"postgresql+psycopg://lab:{PASSWORD}@db:5432/samon",
     "postgresql+psycopg://lab:***@db:5432/samon"),
    (f"postgresql://lab:{PASSWORD}@10.0.0.5/samon", "postgresql://lab:***@10.0.0.5/samon"),
    (f"mysql://lab:{PASSWORD}%40x@db/samon", "mysql://lab:***@db/samon"),  # escaped '@'
    (f"postgresql://lab:a@b/{PASSWORD}@db/samon", "postgresql://lab:***@db/samon"),  # bare '@'
    # user info without a ':' could be a password alone (redis://PASSWORD@host): all hidden
    (f"postgresql+psycopg://lab@db/samon?password={PASSWORD}",
     "postgresql+psycopg://***@db/samon?password=***"),  # libpq takes it as a parameter too
    (f"postgresql+psycopg://lab:x@db/samon?sslpassword={PASSWORD}&sslmode=require",
     "postgresql+psycopg://lab:***@db/samon?sslpassword=***&sslmode=require"),
    (f"postgresql://{PASSWORD}@db/samon", "postgresql://***@db/samon"),  # user info alone
    ("postgresql+psycopg://lab@db:5432/samon", "postgresql+psycopg://***@db:5432/samon"),
    ("sqlite:////srv/runs/samon.db", "sqlite:////srv/runs/samon.db"),  # nothing to hide
]


@pytest.mark.parametrize(("url", "shown"), DISPLAYED)
def test_display_url_hides_the_password_of_any_url(url, shown):
    assert display_url(url) == shown
    assert display_url(SecretStr(url)) == shown
    assert_clean(display_url(url))
    if PASSWORD in url:  # a driver's message that quotes the password loses it
        assert_clean(redact(f"cannot connect to {url} ({PASSWORD!r})", url))


@pytest.mark.parametrize("url", MALFORMED)
def test_display_url_hides_the_password_of_malformed_urls(url):
    assert_clean(display_url(url))
    assert "***" in display_url(url)


# ---------------------------------------------------------------------------------------------
# the database layer: an outage and unusable URLs
# ---------------------------------------------------------------------------------------------


def test_an_unreachable_database_is_named_without_its_password():
    url = unreachable_url()
    waits = []
    with pytest.raises(db.DatabaseUnavailable) as refused:
        db.retrying(lambda: db.open_database(url), url=url, give_up_s=0.0, sleep=waits.append)
    text = str(refused.value)
    assert text.startswith(f"database {SERVER}:") and "cannot be reached" in text, text
    assert len(text.splitlines()) == 1
    assert_clean(text)


@pytest.mark.parametrize("url", MALFORMED)
def test_an_unusable_url_is_refused_without_its_password(url):
    """Refused when the engine is made (ValueError) or when it cannot connect
    (DatabaseUnavailable): either way one line that names the URL without the password."""
    with pytest.raises((ValueError, db.DatabaseUnavailable)) as refused:
        db.retrying(lambda: db.open_database(url), url=url, give_up_s=0.0, sleep=lambda s: None)
    text = str(refused.value)
    assert "***@" in text and len(text.splitlines()) == 1, text
    assert_clean(text)


@pytest.mark.timeout(60)  # a student's click is answered in seconds, not after minutes
def test_a_submit_while_the_database_is_down_is_refused_naming_it_without_the_password(tmp_path):
    """What Launch calls: one line (``DatabaseUnavailable``) that names the server masked;
    nothing queued, no run folder left behind."""
    url = unreachable_url()
    s = load_settings(environ={db.DATABASE_URL_ENV: url})
    store = RunStore(tmp_path / "runs", database_url=url)
    with pytest.raises(service.DatabaseUnavailable) as refused:
        service.submit(tiny_config(), owner="ann", store=store, settings=s)
    assert SERVER in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert_clean(str(refused.value))
    assert not [p for p in (tmp_path / "runs").glob("*") if not p.name.startswith(".")]


@pytest.mark.parametrize("url", UNPARSABLE)
def test_a_store_on_an_unparsable_url_refuses_without_its_password(tmp_path, clean_env, url):
    """The run store reads ``SAMON_DATABASE_URL`` itself (the command line, a worker); its
    refusal, its repr and what it leaves on disk hold no password."""
    clean_env.setenv(db.DATABASE_URL_ENV, url)
    store = RunStore(tmp_path / "runs")
    assert_clean(repr(store))
    with pytest.raises(ValueError) as refused:
        store.list_runs()
    assert "***" in str(refused.value)
    assert_clean(str(refused.value))
    assert_clean(_store_text(tmp_path))


# ---------------------------------------------------------------------------------------------
# the settings
# ---------------------------------------------------------------------------------------------


def test_settings_show_the_database_url_without_its_password_and_hand_it_to_workers():
    url = unreachable_url()
    s = load_settings(environ={}, database_url=url)
    shown = [repr(s), str(s), str(s.describe()), str(s.model_dump()), s.model_dump_json()]
    for text in shown:
        assert_clean(text)
    assert SERVER in str(s.describe())
    # the workers get the URL itself (they must reach the server) and read back the same
    env = s.to_environ()
    assert env[db.DATABASE_URL_ENV] == url
    assert load_settings(environ=env) == s
    assert load_settings(environ={db.DATABASE_URL_ENV: url}) == s


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_database_url_in_the_settings_is_explained_without_the_password(url):
    """Refused by the settings (shown in the sidebar and by every command), or, when they accept
    it, by the database at first use: either way one message that names the URL without the
    password."""
    try:
        s = load_settings(environ={db.DATABASE_URL_ENV: url})
    except ValueError as exc:
        assert "database_url" in str(exc) and "***" in str(exc), str(exc)
        assert_clean(str(exc))
        return
    plain = s.database_url.get_secret_value()
    with pytest.raises((ValueError, db.DatabaseUnavailable)) as refused:
        db.retrying(lambda: db.open_database(plain), url=plain, give_up_s=0.0,
                    sleep=lambda s: None)
    assert "***" in str(refused.value)
    assert_clean(str(refused.value))


def test_settings_file_with_a_mistyped_url_is_explained_without_the_password(tmp_path):
    toml = tmp_path / "samon.toml"
    toml.write_text(f'database_url = "postgres://lab:{PASSWORD}@10.0.0.5/samon"\n')
    with pytest.raises(ValueError, match=r"database_url \(from .*samon.toml\)") as refused:
        load_settings(environ={"SAMON_SETTINGS": str(toml)})
    assert "postgres://lab:***@10.0.0.5" in str(refused.value)
    assert_clean(str(refused.value))


# ---------------------------------------------------------------------------------------------
# real processes: the command line, a worker, and every file of the store
# ---------------------------------------------------------------------------------------------


def _process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMON_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def _store_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*"))
                     if p.is_file())


@pytest.mark.parametrize("url", [MALFORMED[0], MALFORMED[5]])
def test_commands_refusing_a_bad_url_say_so_without_the_password(tmp_path, url):
    """``samon list`` and ``samon worker`` with an unusable SAMON_DATABASE_URL: exit 1 or 2,
    one error line that names the URL masked, no traceback."""
    runs = str(tmp_path / "runs")
    for argv in (["list", "--runs-dir", runs],
                 ["worker", "--devices", "cpu", "--runs-dir", runs, "--exit-when-idle"]):
        done = subprocess.run([sys.executable, "-m", "samon_core", *argv],
                              env=_process_env(SAMON_DATABASE_URL=url), cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        out = done.stdout + done.stderr
        assert done.returncode in (1, 2), (argv, out)
        assert "error:" in done.stderr and "***@" in done.stderr, (argv, out)
        assert "Traceback" not in out, (argv, out)
        assert_clean(out)
    assert_clean(_store_text(tmp_path))


@pytest.mark.parametrize("where", ["environment", "samon.toml"])
def test_samon_list_with_the_database_down_says_so_without_the_password(tmp_path, where):
    """The URL given in the environment or in the settings file (settings.py: both are ways to
    give it) is the database the command line uses; while it does not answer, ``samon list``
    says so in one line naming it masked: no traceback, and no SQLite store made instead."""
    url = unreachable_url()
    env = _process_env(SAMON_DATABASE_URL=url) if where == "environment" else _process_env()
    if where == "samon.toml":
        (tmp_path / "samon.toml").write_text(f'database_url = "{url}"\n')
    done = subprocess.run([sys.executable, "-m", "samon_core", "list", "--runs-dir",
                           str(tmp_path / "runs")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "error:" in done.stderr and SERVER in done.stderr, out
    assert "Traceback" not in out, out
    assert_clean(out)
    assert not (tmp_path / "runs" / db.DB_FILE).exists()


def test_a_worker_waiting_for_the_database_names_it_without_the_password(tmp_path):
    """A worker started while the database is down waits for it (an outage is waited out) and
    says which server it waits for, masked; nothing it writes holds the password."""
    log = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "samon_core", "worker", "--devices", "cpu",
           "--runs-dir", str(tmp_path / "runs"), "--exit-when-idle"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=_process_env(SAMON_DATABASE_URL=unreachable_url()),
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while SERVER not in (text := log.read_text(errors="replace")):
                assert proc.poll() is None or SERVER in log.read_text(errors="replace"), (
                    f"the worker exited ({proc.returncode}) without naming the database:\n{text}")
                assert time.monotonic() < deadline, f"no line names the database:\n{text}"
                time.sleep(0.3)
        finally:  # what it says while stopping is checked too; how fast: not this test's
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert_clean(log.read_text(errors="replace"))
    assert_clean(_store_text(tmp_path))


# ---------------------------------------------------------------------------------------------
# the pages: the sidebar and Launch
# ---------------------------------------------------------------------------------------------


def _page_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success]
    parts += [t.value for t in at.toast] + [str(x.value) for x in at.exception]
    parts += [str(x.stack_trace) for x in at.exception]
    return "\n".join(str(p) for p in parts)


def _said(at: AppTest) -> str:
    """What the page says on purpose: its errors, warnings and captions (not a traceback)."""
    return "\n".join(str(x.value) for x in [*at.error, *at.warning, *at.caption, *at.info])


def _open(path: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(path)
    at.run()
    return at


def test_sidebar_explains_a_mistyped_url_without_the_password(runs, monkeypatch):
    """A mistyped SAMON_DATABASE_URL is a bad setting: the page says so in one message that names
    the URL masked, instead of failing with a traceback, and shows the password nowhere."""
    monkeypatch.setenv(db.DATABASE_URL_ENV, MALFORMED[0])
    at = _open("app_pages/launch.py")
    assert_clean(_page_text(at))
    assert not at.exception, [e.message for e in at.exception]
    said = _said(at).replace("\\", "")
    assert "postgresql+psycopg//lab:***@127.0.0.1" in said, said


def test_launch_while_the_database_is_down_says_so_without_the_password(runs, monkeypatch):
    """The database does not answer: Launch (and the sidebar) say which database cannot be
    reached, masked, within the page's time (no traceback, no wait of minutes)."""
    monkeypatch.setenv(db.DATABASE_URL_ENV, unreachable_url())
    at = _open("app_pages/launch.py", owner="erin")
    buttons = [b for b in at.button if b.key == "launch_preset"]
    if buttons and not at.exception:  # the page drew its form: the launch itself is refused
        buttons[0].click().run()
    assert_clean(_page_text(at))
    assert not at.exception, [e.message for e in at.exception]
    said = _said(at).replace("\\", "")
    assert SERVER in said, said  # the server is named, without its password
