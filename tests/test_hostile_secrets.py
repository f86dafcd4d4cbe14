"""The queue's password never reaches a student, a page or a log (issue 18, item 2).

An outage with a password in the queue URL (a Redis server that does not answer, mistyped and
malformed URLs) is played through every path that talks about the queue: reprs, settings
errors, ``QueueUnavailable`` messages, the recovery's and the worker's logs (real worker
processes writing to ``<runs>/.workers/logs/``), every file of the run store, and the Launch page
and sidebar rendered by ``AppTest``. Each is searched for the password and for the pieces a parser
may cut it into; each must still name the server (``redis://:***@host``) so that the check
cannot pass by saying nothing. The masking is general (``redact.display_url``): a database URL
(issue 24 replaces Redis with SQLAlchemy URLs) is masked the same way.
"""

from __future__ import annotations

import html
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.configs import tiny_config
from support.redis_server import free_port

from samon_core import service
from samon_core.runs.store import RunStore
from samon_core.service.backend import get_queue
from samon_core.service.pool import WorkerPool
from samon_core.runs.redact import display_url, redact, url_secrets
from samon_core.service.settings import QueueBackend, load_settings

# Letters and digits only: Markdown escaping cannot hide a leak from the search.
PASSWORD = "Pw7hostileZ9k2q"
REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TINY = tiny_config()


def unreachable_url(password: str = PASSWORD) -> str:
    return f"redis://:{password}@127.0.0.1:{free_port()}/0"  # nothing listens there


# A mistyped scheme, a password with an unescaped '/' (redis-py then reads part of it as the
# port), a bad port, a broken IPv6 host, a space.
MALFORMED = [
    f"redis//:{PASSWORD}@127.0.0.1:6379/0",
    f"redis://:ab/{PASSWORD}@127.0.0.1:6379/0",
    f"redis://:{PASSWORD}@127.0.0.1:notaport/0",
    f"redis://lab:{PASSWORD}@[::1/0",
    f"redis://:{PASSWORD}@127.0.0.1:6379/0 ",
    f"http://:{PASSWORD}@127.0.0.1:6379/0",
]


def assert_clean(text: str, password: str = PASSWORD) -> None:
    """No trace of the password (nor of its longer pieces) in ``text``, as read."""
    shown = html.unescape(text.replace("\\", ""))
    for secret in (password, *url_secrets(f"redis://:{password}@h")):
        assert secret not in shown, f"{secret!r} leaked in {shown[:600]!r}"


@pytest.fixture(autouse=True)
def _env(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------------------------------------
# the one function that renders a URL for humans
# ---------------------------------------------------------------------------------------------

DISPLAYED = [
    (f"redis://:{PASSWORD}@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
    (f"rediss://lab:{PASSWORD}@redis.example:6380/1", "rediss://lab:***@redis.example:6380/1"),
    (f"unix:///run/redis.sock?db=0&password={PASSWORD}", "unix:///run/redis.sock?db=0&password=***"),
    # database URLs, as SQLAlchemy's URL.render_as_string(hide_password=True) shows them
    (f"postgresql+psycopg://lab:{PASSWORD}@db:5432/samon", "postgresql+psycopg://lab:***@db:5432/samon"),
    (f"mysql://lab:{PASSWORD}%40x@db/samon", "mysql://lab:***@db/samon"),
    (f"postgresql://lab:a@b/{PASSWORD}@db/samon", "postgresql://lab:***@db/samon"),
    (f"redis://{PASSWORD}@h:6379", "redis://***@h:6379"),  # user info alone: hidden too
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),  # nothing to hide
    ("sqlite:////srv/runs/.queue/huey.db", "sqlite:////srv/runs/.queue/huey.db"),
]


@pytest.mark.parametrize(("url", "shown"), DISPLAYED)
def test_display_url_hides_the_password_of_any_url(url, shown):
    assert display_url(url) == shown
    assert_clean(display_url(url))
    if PASSWORD in url:  # a client library's message that quotes the password loses it
        assert_clean(redact(f"cannot connect to {url} ({PASSWORD!r})", url))


@pytest.mark.parametrize("url", MALFORMED)
def test_display_url_hides_the_password_of_malformed_urls(url):
    assert_clean(display_url(url))
    assert "***" in display_url(url)


# ---------------------------------------------------------------------------------------------
# the outage, in process: settings, queue, submit, recovery
# ---------------------------------------------------------------------------------------------


def test_outage_messages_reprs_and_logs_hold_no_password(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    s = load_settings(environ={}, queue=QueueBackend.REDIS, redis_url=unreachable_url(),
                      heartbeat_timeout_s=0.01)
    store = RunStore(tmp_path / "runs")
    seen = [repr(s), str(s), str(s.describe()), str(s.model_dump())]
    queue = get_queue(store, s)
    seen.append(repr(queue))
    assert "redis://:***@127.0.0.1" in repr(queue)
    key = service.register_owner("ann", store=store)
    with pytest.raises(service.QueueUnavailable) as refused:
        service.submit(TINY, owner="ann", owner_key=key, store=store, settings=s)
    seen.append(str(refused.value))
    assert "redis://:***@127.0.0.1" in str(refused.value)
    rid = store.create_run(TINY, {"owner": "ann"})  # a queued run the recovery must re-send
    seen.append(str(service.recover(store, force=True, settings=s, now=time.time() + 5)))
    assert store.read_status(rid)["state"] == "queued"
    seen += [r.getMessage() for r in caplog.records]
    seen += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert any("cannot list the queue" in r.getMessage() for r in caplog.records)
    for text in seen:
        assert_clean(text)
    # the workers still get the URL itself (they must reach the server)
    assert PASSWORD in s.to_environ()["SAMON_REDIS_URL"]
    assert load_settings(environ=s.to_environ()) == s


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_url_errors_hold_no_password(tmp_path, url):
    """Refused by the settings (shown in the sidebar) or, when the settings accept it, by the
    queue (shown on Launch): either way one message that names the URL without the password."""
    for source in ({"environ": {"SAMON_QUEUE": "redis", "SAMON_REDIS_URL": url}},
                   {"environ": {}, "queue": QueueBackend.REDIS, "redis_url": url}):
        try:
            s = load_settings(**source)
        except ValueError as exc:
            assert "redis_url" in str(exc) and "***" in str(exc)
            assert_clean(str(exc))
            continue
        store = RunStore(tmp_path / "runs")
        with pytest.raises(service.QueueUnavailable) as refused:
            get_queue(store, s).enqueue(get_queue(store, s).new_task("r1"))
        assert "***" in str(refused.value)
        assert_clean(str(refused.value))


def test_settings_file_with_a_mistyped_url_is_explained_without_the_password(tmp_path):
    toml = tmp_path / "samon.toml"
    toml.write_text(f'queue = "redis"\nredis_url = "redis//lab:{PASSWORD}@10.0.0.5:6379/0"\n')
    with pytest.raises(ValueError, match=r"redis_url \(from .*samon.toml\)") as refused:
        load_settings(environ={"SAMON_SETTINGS": str(toml)})
    assert "redis//lab:***@10.0.0.5" in str(refused.value)
    assert_clean(str(refused.value))


# ---------------------------------------------------------------------------------------------
# real worker processes: their log files and every file of the store
# ---------------------------------------------------------------------------------------------


def _worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMON_")}
    # a trainer that is never called: the worker does not import torch in the background
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", SAMON_WORKER_TRAINER="os:getcwd",
               PYTHONPATH=str(REPO), **extra)
    return env


def _store_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*"))
                     if p.is_file() and p.suffix != ".db")


def test_worker_logs_and_store_files_hold_no_password(tmp_path, monkeypatch):
    url = unreachable_url()
    for key, value in _worker_env(SAMON_QUEUE="redis", SAMON_REDIS_URL=url).items():
        monkeypatch.setenv(key, value)
    s = load_settings(heartbeat_every_s=0.2, recover_every_s=0.5)
    store = RunStore(tmp_path / "runs")
    store.create_run(TINY, {"owner": "ann"})
    pool = WorkerPool(store.root, ["cpu"], settings=s, exit_with_parent=True)
    pool.start()
    logs = store.root / ".workers" / "logs"
    try:
        deadline = time.monotonic() + 60
        while "retrying with backoff" not in (text := _store_text(logs) if logs.exists() else ""):
            assert time.monotonic() < deadline, f"no outage line in the worker log:\n{text}"
            time.sleep(0.2)
    finally:
        pool.stop(timeout=15)
    text = _store_text(logs)
    assert "serving Queue(redis: redis://:***@127.0.0.1" in text, text
    assert_clean(text)
    assert_clean(_store_text(store.root))


@pytest.mark.parametrize("url", [MALFORMED[0], MALFORMED[1]])
def test_worker_refusing_a_bad_url_says_so_without_the_password(tmp_path, url):
    for args, env in ((["--queue", "redis", "--redis-url", url], {}),
                      ([], {"SAMON_QUEUE": "redis", "SAMON_REDIS_URL": url})):
        done = subprocess.run(
            [sys.executable, "-m", "samon_core.service.worker_cli", "--devices", "cpu",
             "--runs-dir", str(tmp_path / "runs"), "--exit-when-idle", *args],
            env=_worker_env(**env), capture_output=True, text=True, timeout=120)
        assert done.returncode in (1, 2), done.stderr
        assert "samon worker: error:" in done.stderr and "***" in done.stderr
        assert "Traceback" not in done.stderr
        assert_clean(done.stdout + done.stderr)
    if (tmp_path / "runs").exists():
        assert_clean(_store_text(tmp_path / "runs"))


# ---------------------------------------------------------------------------------------------
# the pages: the sidebar's worker line and Launch's refusal
# ---------------------------------------------------------------------------------------------


def _page_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success]
    parts += [t.value for t in at.toast] + [str(x.value) for x in at.exception]
    parts += [str(x.stack_trace) for x in at.exception]
    return "\n".join(str(p) for p in parts)


def _open(path: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(path)
    at.run()
    return at


def test_sidebar_shows_a_mistyped_url_without_the_password(runs, monkeypatch):
    monkeypatch.setenv("SAMON_QUEUE", "redis")
    monkeypatch.setenv("SAMON_REDIS_URL", MALFORMED[0])
    at = _open("app_pages/launch.py")
    text = _page_text(at)
    assert "redis//:\\*\\*\\*@" in text or "redis//:***@" in text, text  # it is explained
    assert_clean(text)


def test_launch_while_redis_is_down_shows_no_password(runs, monkeypatch):
    monkeypatch.setenv("SAMON_QUEUE", "redis")
    monkeypatch.setenv("SAMON_REDIS_URL", unreachable_url())
    at = _open("app_pages/launch.py", owner="erin")
    next(b for b in at.button if b.key == "launch_preset").click().run()
    text = _page_text(at)
    assert any("Not launched" in e.value for e in at.error), text
    assert "127.0.0.1" in text  # the server is named ...
    assert_clean(text)  # ... without its password
