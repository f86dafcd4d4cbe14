"""A stand-in trainer for worker processes: one epoch record every 0.1 s and a 'checkpoint' per
epoch, so a test can kill the worker in the middle of a run without importing torch. Run as a
worker: ``python -m support.slow_trainer --devices cpu --runs-dir ...`` (the worker's options;
``tests`` on PYTHONPATH)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from samon_core.records import EpochRecord, ResumeRecord
from samon_core.runs.store import RunStore
from support.records import EPOCH_METRICS, record


def train(config, run_dir, *, callback=None, should_stop=None, data_dir=None, resume=False):
    run_dir = Path(run_dir)
    store, rid = RunStore(run_dir.parent), run_dir.name
    store.write_status(rid, "running", pid=os.getpid())
    ckpt = run_dir / "checkpoint.pt"
    start = int(ckpt.read_text()) if resume and ckpt.exists() else 0
    with store.metrics_writer(rid) as w:
        if resume:
            w.write(record(ResumeRecord, epoch=start, step=0, time=0.0))
        for epoch in range(start + 1, config.epochs + 1):
            if should_stop is not None and should_stop():
                store.write_status(rid, "cancelled")
                return {"state": "cancelled"}
            time.sleep(0.1)
            w.write(record(EpochRecord, without=EPOCH_METRICS, epoch=epoch, step=epoch,
                           time=float(epoch)))
            ckpt.write_text(str(epoch))
    store.write_status(rid, "finished")
    return {"state": "finished"}


if __name__ == "__main__":
    from samon_core.service.worker import worker_main

    sys.exit(worker_main(trainer=train))
