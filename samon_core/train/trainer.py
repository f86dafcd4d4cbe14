"""Train one run end to end and stream everything a user wants to watch.

``train(config, run_dir)`` seeds everything, builds data (on the device), model and optimizer
(SGD / AdamW / Lion, wrapped in SAM for the SAM methods, with SAM-ON's cheap ascent pass) and
trains (loop.py). It emits the metric records of samon_core/records.py to ``metrics.jsonl``
(recorder.py) and to an optional ``callback``:

    step        every ``log_every_s`` seconds: loss, accuracy, lr, step time, images/s
    epoch       train/test loss (label-smoothed) and plain CE, accuracy, epoch time, ETA
    sharpness   logit-normalised adaptive l_inf m-sharpness (sharpness.py), 1-step and multi-step
    norm_stats  gamma / beta histograms on fixed bins and per-layer mean/std (epoch 0 = init)

It keeps ``status.json`` current (running + heartbeat, then finished / diverged / cancelled /
failed), writes a checkpoint atomically after every epoch (model, optimizer, scheduler, RNG,
epoch) from which ``resume=True`` continues exactly, and writes ``summary.json`` (with
``total_time_s`` and the resolved ``precision``) at the end. ``should_stop()`` is polled every
step and cancels within one step.

Runs that go wrong say so instead of "finishing" quietly (loop.py has the thresholds):

* a NaN or infinite training loss ends the run as ``diverged`` (with the epoch and step), not as
  a crash;
* so does an exploding one, a finite training loss above 10x the chance level ln(num_classes)
  (``rho=1e6`` reached 15,056): state ``diverged``, ``diverged_reason`` "exploded" in the summary
  and a status message naming the loss and the limit. Diverged, not finished, because such a
  model has learnt nothing worth comparing and its accuracy would only mislead a chart;
* a run that finishes although its training loss never fell below its first value (``lr=10``
  ends at chance) stays ``finished`` (its numbers are real) with a ``warning`` in its summary,
  which is also the finished status's message.

The parts: loop.py (the training loop, read top to bottom; its plug-ins are callbacks),
setup.py (device, precision, data, model, optimizer, schedule), step.py (one optimizer step),
telemetry.py (the loop's own records), callbacks.py (checkpoint, norm statistics, sharpness,
landscape, robustness), recorder.py (the run store: metrics, status, summary), lockstep.py
(several runs interleaved step by step: ``train_group``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from samon_core.catalog.datasets import DATA_DIR_ENV
from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.fence import WorkerClaim
from samon_core.train.lockstep import GroupJob, train_group

__all__ = ["DATA_DIR_ENV", "GroupJob", "train", "train_group"]


def train(
    config: RunConfig,
    run_dir: str | os.PathLike,
    *,
    callback: Callable[[Record], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_dir: str | os.PathLike | None = None,
    resume: bool = False,
    claim: WorkerClaim | None = None,
) -> dict:
    """Train one run in ``run_dir`` (a folder of a ``RunStore``; created if missing) and return
    its summary. See the module docstring for what is written. An error other than a cancel or a
    divergence marks the run failed and is raised. ``claim``: the worker's claim on the run,
    the fence of its writes (recorder.py; None: not fenced)."""
    job = GroupJob(config, run_dir, callback=callback, should_stop=should_stop,
                   data_dir=data_dir, resume=resume, claim=claim)
    return train_group([job], raise_errors=True)[0]
