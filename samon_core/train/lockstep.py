"""Training several runs side by side in one process: lockstep groups.

A comparison (SGD vs SAM-all vs SAM-ON, a few seeds) is only fair when its runs share the
machine's conditions. ``train_group`` trains them interleaved, one optimizer step of each in turn,
on one device, so that

* their curves grow side by side (a student sees all three lines within the first seconds), and
* their step times are measured under the same load, minutes apart at most milliseconds apart:
  the cost ratios SAM-all / SGD and SAM-ON / SGD read off such a group are evidence; those of runs
  trained at different times are not (the app shows ratios only for lockstep runs).

Each run keeps its own random state: before a run's step the group puts that run's generators
(torch CPU and CUDA, Python, NumPy) in place and takes them back afterwards, so a run in a group
produces the same records and weights, bit for bit, as the same run trained alone. Each run's
step time is its own (``Loop(own_time=True)``: measured around its step, with a CUDA
synchronisation), not the window's wall time that the other runs' steps share. The ``time`` of a
record stays the group's wall clock since the run started.

A run that ends early (cancelled, diverged, failed) leaves the group; the others go on. Every run
gets its own status, metrics and summary exactly as ``train`` writes them; its summary also names
the group (``lockstep``: the run ids trained together).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from samon_core.catalog import datasets
from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.runs.fence import WorkerClaim
from samon_core.train.callbacks import Records, measurements
from samon_core.train.loop import Loop
from samon_core.train.recorder import StoreRecorder


@dataclass
class GroupJob:
    """One run of a lockstep group: what ``train`` takes for it."""

    config: RunConfig
    run_dir: str | os.PathLike
    callback: Callable[[Record], None] | None = None
    should_stop: Callable[[], bool] | None = None
    data_dir: str | os.PathLike | None = None
    resume: bool = False
    claim: WorkerClaim | None = None  # fences the run's writes (recorder.py)


class RngSlot:
    """A run's own global random state, swapped in before its step and out after it. Plain
    getstate/setstate objects: swapping costs microseconds, not a checkpoint's conversion."""

    def __init__(self) -> None:
        self.save()

    def save(self) -> None:
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.python = random.getstate()
        self.numpy = np.random.get_state()

    def load(self) -> None:
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        random.setstate(self.python)
        np.random.set_state(self.numpy)


def stored_loop(job: GroupJob, *, own_time: bool = False) -> Loop:
    """The loop of ``job``'s run, recorded in its run store: the folder made and the run marked
    ``running`` now (``StoreRecorder``), the measurements and the caller's callback plugged in.
    The model is built when the loop starts (seeded by the config, so the order of building
    does not matter)."""
    recorder = StoreRecorder(job.config, job.run_dir, claim=job.claim)
    callbacks = [*measurements(job.config, recorder.checkpoint_path, job.resume), recorder]
    if job.callback is not None:
        callbacks.append(Records(job.callback))
    return Loop(job.config, callbacks=callbacks, should_stop=job.should_stop,
                data_dir=datasets.data_dir(job.data_dir), own_time=own_time)


@dataclass
class _Member:
    loop: Loop
    steps: Iterator[int]
    rng: RngSlot


def train_group(jobs: Sequence[GroupJob], *, raise_errors: bool = False) -> list[dict]:
    """Train ``jobs`` interleaved step by step (module doc); their summaries, in order.

    A run that fails ends ``failed`` (status and summary) and the others go on; with
    ``raise_errors`` (one run, as ``train`` does) its exception is raised after its status is
    written. KeyboardInterrupt / SystemExit end every run still training as failed and propagate.
    """
    if not jobs:
        return []
    swap = len(jobs) > 1  # a run alone keeps the process's random state as it is
    loops = [stored_loop(job, own_time=swap) for job in jobs]
    if swap:
        ids = [Path(job.run_dir).resolve().name for job in jobs]
        for loop in loops:
            loop.extra["lockstep"] = ids
    members = [_Member(loop, loop.steps(), RngSlot()) for loop in loops]
    try:
        while members:
            for member in list(members):
                if not _advance(member, swap, raise_errors):
                    members.remove(member)
    except BaseException as exc:  # interrupted: nobody is left "running"
        for loop in loops:
            loop.end(exc)  # a run that has ended already keeps its end
        raise
    return [loop.summary for loop in loops]


def _advance(m: _Member, swap: bool, raise_errors: bool) -> bool:
    """One step of ``m``'s run; False when the run has ended (its loop has ended it)."""
    if swap:
        m.rng.load()
    try:
        next(m.steps)
    except StopIteration:
        return False
    except Exception:
        if raise_errors:
            raise
        return False
    if swap:
        m.rng.save()
    return True
