"""A room's burst of submits against the job service's database (service/database.py, issue 24).

``--students`` threads of one process (the app serves its sessions as threads) each admit a 3-run
comparison at the same instant (``database.admit``: room check, queue limits and the inserts in
one transaction), then one run more, which ``max_queued_per_owner`` = 3 must refuse. Reports the
latency of the comparison's admission (p50 / p95 / max), checks that every extra run was refused
and that no owner holds more than 3 runs, on SQLite (a file in a temporary folder) and, with
``--postgres``, on a throw-away PostgreSQL server (tests/support/postgres_server.py).

This is the transaction only: not the checks before it (config validation, preflight) nor the
run folder's config.json, which the files-era ``bench/room_load.py`` submit figure includes.

Usage: python bench/db_admission.py [--students 30] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from samon_core.runs import database as db  # noqa: E402
from samon_core.service import admission  # noqa: E402
from samon_core.service.admission import LimitExceeded  # noqa: E402

LIMITS = admission.QueueLimits(max_queue=0, max_queued_per_owner=3)


def _burst(url: str, students: int) -> dict[str, object]:
    engine = db.open_database(url)
    start = threading.Barrier(students)
    took: list[float] = []
    refused: list[str] = []

    def student(i: int) -> None:
        runs = [admission.NewRun(f"s{i}-{m}", config_hash=f"s{i}-{m}", device="cpu", group=f"g{i}")
                for m in ("sgd", "sam", "samon")]
        start.wait()
        t0 = time.perf_counter()
        admission.admit(engine, f"student{i}", runs, LIMITS, check_room=lambda body: None)
        took.append(time.perf_counter() - t0)
        try:
            admission.admit(engine, f"student{i}", [admission.NewRun(f"s{i}-x", f"s{i}-x")], LIMITS)
        except LimitExceeded as exc:
            refused.append(exc.limit)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(students)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = db.run_rows(engine)
    per_owner = max(sum(r["owner"] == f"student{i}" for r in rows) for i in range(students))
    engine.dispose()
    took.sort()
    return {"p50_ms": statistics.median(took) * 1e3,
            "p95_ms": took[max(0, round(0.95 * len(took)) - 1)] * 1e3, "max_ms": took[-1] * 1e3,
            "refused": f"{refused.count('max_queued_per_owner')}/{students}",
            "most_per_owner": per_owner, "runs": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        print("sqlite  ", _burst(db.database_url(Path(tmp)), args.students))
    if args.postgres:
        from support.postgres_server import PostgresServer, why_unavailable

        why = why_unavailable()
        if why:
            print(f"postgresql: skipped ({why})")
        else:
            server = PostgresServer()
            try:
                server.start()
                print("postgres", _burst(server.new_database(), args.students))
            finally:
                server.remove()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
