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
step time is its own (``TrainingLoop(own_time=True)``: measured around its step, with a CUDA
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

from samon_core.records import Record
from samon_core.runs.config import RunConfig
from samon_core.train.context import Cancelled, Diverged
from samon_core.train.loop import TrainingLoop
from samon_core.train.run import RunHandle, open_run
from samon_core.train.setup import build_run


@dataclass
class GroupJob:
    """One run of a lockstep group: what ``train`` takes for it."""

    config: RunConfig
    run_dir: str | os.PathLike
    callback: Callable[[Record], None] | None = None
    should_stop: Callable[[], bool] | None = None
    data_dir: str | os.PathLike | None = None
    resume: bool = False


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


@dataclass
class _Member:
    handle: RunHandle
    loop: TrainingLoop
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
    handles = [open_run(j.config, Path(j.run_dir), callback=j.callback,
                        should_stop=j.should_stop, data_dir=j.data_dir, resume=j.resume)
               for j in jobs]
    if len(handles) > 1:
        ids = [h.ctx.run_id for h in handles]
        for h in handles:
            h.extra["lockstep"] = ids
    swap = len(handles) > 1  # a run alone keeps the process's random state as it is
    members: list[_Member] = []
    try:
        for h in handles:
            member = _start(h, swap, raise_errors)
            if member is not None:
                members.append(member)
        while members:
            for member in list(members):
                if not _advance(member, swap, raise_errors):
                    members.remove(member)
    except BaseException as exc:  # interrupted: nobody is left "running"
        for h in handles:
            if not h.closed:
                h.fail(exc)
        raise
    finally:
        for h in handles:
            h.close()
    return [h.summary for h in handles]


def _start(h: RunHandle, swap: bool, raise_errors: bool) -> _Member | None:
    """Build the run (seeded by its config, so the order of building does not matter)."""
    try:
        setup = build_run(h.ctx.config, h.ctx.data_dir)
        loop = TrainingLoop(h.ctx, setup, own_time=swap)
        return _Member(h, loop, loop.steps(), RngSlot())
    except Exception as exc:
        h.fail(exc)
        if raise_errors:
            raise
        return None


def _advance(m: _Member, swap: bool, raise_errors: bool) -> bool:
    """One step of ``m``'s run; False when the run has ended (and has been closed)."""
    if swap:
        m.rng.load()
    try:
        next(m.steps)
    except StopIteration:
        m.handle.finish(m.loop.result)
        return False
    except Cancelled:
        m.handle.cancelled()
        return False
    except Diverged as d:
        m.handle.diverged(d)
        return False
    except Exception as exc:
        m.handle.fail(exc)
        if raise_errors:
            raise
        return False
    if swap:
        m.rng.save()
    return True

