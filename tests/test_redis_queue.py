"""The Redis-backed queue (``SAMON_QUEUE=redis``) with a real ``redis-server`` started by the test
on a free port of 127.0.0.1, and real worker processes: JSON messages in Redis, a cancelled run
skipped, a worker that exits with runs still queued and a second one that finishes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from support.configs import tiny_config
from support.redis_server import REDIS_SERVER, RedisServer, free_port

from samon_core import service
from samon_core.runs.store import RunStore
from samon_core.service.backend import QUEUE_DIR, get_queue
from samon_core.service.settings import QueueBackend, load_settings

TINY = tiny_config()


def test_unreachable_redis_raises_and_leaves_no_run(tmp_path):
    s = load_settings(environ={}, queue=QueueBackend.REDIS, heartbeat_timeout_s=0.01,
                      redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    store = RunStore(tmp_path / "runs")
    with pytest.raises(service.QueueUnavailable, match="cannot reach the Queue\\(redis"):
        service.submit_group({"a": TINY, "b": TINY.replace(seed=1)}, owner="ann", store=store,
                             settings=s)
    assert store.run_ids() == []
    # recover() has to ask the queue about this queued run; the outage must not break the app
    rid = store.create_run(TINY)
    later = time.time() + 1.0  # well past the grace of 2 x heartbeat_timeout_s
    assert service.recover(store, force=True, settings=s, now=later)["lost"] == []
    assert store.read_status(rid)["state"] == "queued"


@pytest.fixture
def redis_url(tmp_path):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server.url
    server.stop()


@pytest.mark.redis
@pytest.mark.slow
def test_redis_queue_end_to_end(tmp_path, redis_url, monkeypatch):
    import redis

    env = {"SAMON_QUEUE": "redis", "SAMON_REDIS_URL": redis_url, "SAMON_QUEUE_NAME": "labtest",
           "SAMON_AUTO_RESUME": "0", "SAMON_HEARTBEAT_EVERY_S": "0.5"}
    s = load_settings(environ=env)
    store = RunStore(tmp_path / "runs")
    ann = service.register_owner("ann", store=store)
    ids = [service.submit(TINY.replace(seed=i), owner="ann", store=store, settings=s,
                          owner_key=ann) for i in range(3)]
    assert service.cancel(ids[1], owner_key=ann, store=store, settings=s) == "cancelled"
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange("huey.redis.labtest", 0, -1)
    assert len(raw) == 3 and all(m.startswith(b'{"message":') for m in raw)  # JSON, not pickle
    assert not (store.root / QUEUE_DIR / "huey.db").exists()  # no SQLite queue involved

    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("SAMON_")}
    worker_env.update(env, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "samon_core.service.worker_cli", "--devices", "cpu", "--runs-dir",
           str(store.root)]
    log = tmp_path / "worker.log"

    def run_worker(*args: str) -> int:
        with open(log, "ab") as fh:
            proc = subprocess.Popen([*cmd, *args], env=worker_env, stdout=fh,
                                    stderr=subprocess.STDOUT)
        try:
            return proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            pytest.fail("worker did not finish:\n" + log.read_text()[-3000:])

    # a worker that stops after one run leaves the rest in Redis; the next one finishes them
    assert run_worker("--max-runs", "1") == 0
    states = [store.read_status(r)["state"] for r in ids]
    assert states == ["finished", "cancelled", "queued"], log.read_text()[-3000:]
    assert get_queue(store, s).pending_run_ids() == [ids[1], ids[2]]
    assert run_worker("--exit-when-idle") == 0
    assert [store.read_status(r)["state"] for r in ids] == ["finished", "cancelled", "finished"]
    assert client.llen("huey.redis.labtest") == 0
    for rid in (ids[0], ids[2]):
        assert list(store.epochs_df(rid)["epoch"]) == [1, 2]
    assert not store.metrics_path(ids[1]).exists()  # the cancelled run never started
    client.close()
