"""The run's checkpoint: written atomically after every epoch, read back only as plain data.

``checkpoint.pt`` holds the model, optimizer and scheduler state dicts, the RNG states, the
``TrainState`` (epochs and steps done, training time, best accuracy, epoch times) and the config.
Resuming from it continues the run exactly: the loaders' batches are a function of (seed, epoch),
and the RNG states restore everything else that draws random numbers (dropout, ...).

Everything in it is a tensor or a plain value (dict, list, tuple, str, int, float, bool, None),
so it loads with ``torch.load(..., weights_only=True)``: a checkpoint that holds any other
pickled object is refused (``CheckpointRefused``) before any of its code can run. The RNG states
of Python and NumPy are therefore stored as tensors and numbers, not as the objects their
``getstate`` functions return.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samon_core.runs.config import RunConfig
from samon_core.runs.io import temp_prefix
from samon_core.train.loop import TrainState


class CheckpointRefused(ValueError):
    """The checkpoint holds something other than tensors and plain values."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file.
    The temporary name says which process writes it (``runs.io.temp_prefix``), so that the
    next worker removes one left by a kill mid-write, and only then."""
    tmp = path.with_name(f"{temp_prefix(path)}{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:  # a Python file: the disk's own error is kept (below)
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException as exc:  # e.g. ENOSPC: no half-written temporary file stays behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(exc, OSError) and isinstance(exc.__context__, OSError):
            raise exc.__context__ from None  # torch wraps "No space left" in a RuntimeError
        raise


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), Python and NumPy, as tensors and numbers."""
    version, internal, gauss_next = random.getstate()  # internal: 625 ints < 2**32
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # keys: uint32 (624,)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {
            "version": version,
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"].cpu())
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((
        npy["kind"],
        npy["keys"].numpy().astype(np.uint32),
        npy["pos"],
        npy["has_gauss"],
        npy["cached_gaussian"],
    ))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    config: RunConfig,
) -> None:
    """Write the checkpoint of a run that stands at ``state`` (atomically)."""
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "epoch": state.epoch,
            "step": state.step,
            "elapsed": state.elapsed,
            "best_acc": state.best_acc,
            "epoch_times": list(state.epoch_times),
            "first_loss": state.first_loss,
            "lowest_loss": state.lowest_loss,
            "config": config.to_dict(),  # JSON-ready: plain values only
        },
        path,
    )


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as plain data (tensors on the CPU); ``CheckpointRefused`` when
    it holds anything else (nothing in it is executed)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointRefused(
            f"refusing to load the checkpoint {path}: it holds objects other than tensors and "
            f"plain values, so it was not written by this version of SAM-ON Lab (or was altered). "
            f"Nothing in it was run. Start the run again without resume. "
            f"({_unpickler_reason(str(exc))})"
        ) from None


def _unpickler_reason(message: str) -> str:
    """The line of torch's weights-only error that names what was refused (torch's advice to
    load with weights_only=False is left out on purpose)."""
    for line in message.splitlines():
        if "WeightsUnpickler error" in line or "Unsupported global" in line:
            return line.strip()
    return message.splitlines()[0] if message else "weights-only load failed"


def restore(
    ckpt: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> TrainState:
    """Load a checkpoint's states into the run's objects and RNGs; return where it stood."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    return TrainState(
        epoch=ckpt["epoch"],
        step=ckpt["step"],
        elapsed=ckpt["elapsed"],
        best_acc=ckpt["best_acc"],
        epoch_times=list(ckpt["epoch_times"]),
        # absent from checkpoints written before the loss check: the check then starts afresh
        first_loss=ckpt.get("first_loss"),
        lowest_loss=ckpt.get("lowest_loss", math.inf),
    )
