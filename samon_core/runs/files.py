"""The names of the files in a run's folder ``<runs>/<run_id>/``, written once here.

A run's state, times and requesters are rows of the database (database.py); its folder holds
what is big or streamed:

* ``config.json`` (``CONFIG_FILE``): the run's ``RunConfig``; written once, when the run is
  created at submit (``RunStore.create_run``), never rewritten.
* ``meta.json`` (``META_FILE``): run id, owner, group, label, preset, creation time and config
  hash; written once at submit, beside the config (the requesters and the current owner are
  the database's, ``RunStore.read_meta`` joins them in).
* ``metrics.jsonl`` (``METRICS_FILE``): the metric records (samon_core/records.py), one JSON
  object per line, append-only; written by the worker training the run (train/recorder.py);
  the commands on a finished run append to it (landscape slices, robustness), as does a class
  replay's load.
* ``checkpoint.pt`` (``CHECKPOINT_FILE``): the model, optimizer, scheduler and RNG states a
  resumed run continues from; written by the worker training the run (train/callbacks.py).
* ``summary.json`` (``SUMMARY_FILE``): the run's final numbers; written by the worker training
  the run when it ends (train/recorder.py); ``robustness RUN`` adds its result.
* ``status.json`` (``STATUS_FILE``): no store writes it any more (the state is the database's
  since the cutover). It exists only in a store of the files era, which importer.py reads once
  (and ``RunStore`` adopts a folder that holds one but has no row), and as a member of a class
  replay archive (claims/class_replay.py writes and reads its own small one: state, ended,
  epoch, progress). Its field checks (fieldcheck.py) also check the status dict a row gives.

Imports nothing from the lab, so every module can import it without a cycle. A message that
shows a file's name builds it from these constants (``f"... appended to {METRICS_FILE}"``);
tests/project/test_one_home.py fails on any other module that spells one as a string.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
STATUS_FILE = "status.json"

RUN_FILE_NAMES = (CONFIG_FILE, META_FILE, METRICS_FILE, CHECKPOINT_FILE, SUMMARY_FILE,
                  STATUS_FILE)
