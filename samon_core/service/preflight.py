"""What can be checked about a run before its folder exists, without torch.

``check_runnable(config, here=...)`` raises ``NotRunnable`` (a ``ValueError``, one line) for:

* a model the catalog does not know, or a norm layer it cannot be built with;
* a ``train_subset`` / ``test_subset`` larger than the dataset's split;
* with ``here=True`` (the run will be trained on this machine): a device this machine lacks
  (``cuda:99``; GPUs are counted without torch, as the worker pool does) and a CIFAR dataset
  whose files are missing while the download host cannot be reached.

``here`` is True for ``samon run`` and for a worker about to train; the job API (``submit``) uses
it only when workers run on this machine (setting ``local_checks``: by default yes with the SQLite
database, which serves one machine, and no with PostgreSQL, whose workers may have other GPUs and
other data folders; a worker then fails such a run with the same message).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

from samon_core.catalog import DATASET_SIZES, MODELS
from samon_core.catalog.datasets import CIFAR_LAYOUT
from samon_core.catalog.datasets import data_dir as data_dir_of
from samon_core.runs.config import RunConfig
from samon_core.runs.messages import clip
from samon_core.service.pool import detect_gpus

DOWNLOAD_HOST = ("www.cs.toronto.edu", 443)
_ONLINE_TTL_S = 60.0
_online_cache: list[tuple[float, bool]] = []
_cache_lock = threading.Lock()
_gpus: list[list[str]] = []


class NotRunnable(ValueError):
    """A run that cannot be trained as asked (here, or anywhere); nothing was created."""


def default_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data folder a run here reads (``catalog.datasets.data_dir``: the one rule)."""
    return data_dir_of(data_dir)


def _check_model(config: RunConfig) -> None:
    spec = MODELS.get(config.model)
    if spec is None:
        raise NotRunnable(f"unknown model {clip(config.model)}; choose one of "
                          f"{', '.join(sorted(MODELS))}")
    norm = getattr(config, "norm_layer", None)
    if norm is not None and norm not in spec.norms:
        raise NotRunnable(f"model {config.model!r} cannot use norm_layer {clip(norm)}; it "
                          f"supports {', '.join(spec.norms)}")


def _check_subsets(config: RunConfig) -> None:
    sizes = DATASET_SIZES.get(config.dataset)
    if sizes is None:
        raise NotRunnable(f"unknown dataset {clip(config.dataset)}; choose one of "
                          f"{', '.join(DATASET_SIZES)}")
    for field, size, split in (("train_subset", sizes[0], "training"),
                               ("test_subset", sizes[1], "test")):
        n = getattr(config, field, 0) or 0
        if n > size:
            raise NotRunnable(f"{field}={n} but the {split} split of {config.dataset} has only "
                              f"{size:,} images (0 = all of them)")


def _gpu_entries() -> list[str]:
    with _cache_lock:  # GPUs do not come and go while a process runs; nvidia-smi is slowish
        if not _gpus:
            _gpus.append(detect_gpus())
        return _gpus[0]


def _check_device(device: str) -> None:
    if device in ("auto", "cpu"):
        return
    if device == "mps":
        if sys.platform != "darwin":
            raise NotRunnable("device='mps' but this machine has no Apple GPU (use 'auto' or "
                              "'cpu')")
        return
    gpus = _gpu_entries()
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if not gpus:
        raise NotRunnable(f"device={device!r} but this machine has no CUDA device (use 'auto' "
                          "or 'cpu')")
    if index >= len(gpus):
        raise NotRunnable(f"device={device!r} but this machine has only {len(gpus)} CUDA "
                          f"device(s): cuda:0..cuda:{len(gpus) - 1}")


def online(timeout: float = 3.0) -> bool:
    """Whether the CIFAR download host answers (cached for a minute)."""
    now = time.monotonic()
    with _cache_lock:
        if _online_cache and now - _online_cache[0][0] < _ONLINE_TTL_S:
            return _online_cache[0][1]
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
            ok = True
    except OSError:
        ok = False
    with _cache_lock:
        _online_cache[:] = [(now, ok)]
    return ok


def cifar_files_present(dataset: str, data_dir: Path) -> bool:
    layout = CIFAR_LAYOUT[dataset]
    return all((data_dir / layout.folder / f).is_file() for f in layout.files)


def _check_data(config: RunConfig, data_dir: Path) -> None:
    if config.dataset not in CIFAR_LAYOUT or cifar_files_present(config.dataset, data_dir):
        return
    if online():
        return  # the trainer downloads it
    folder, files = CIFAR_LAYOUT[config.dataset].folder, CIFAR_LAYOUT[config.dataset].files
    raise NotRunnable(
        f"dataset {config.dataset} is not in {clip(str(data_dir / folder))} (files "
        f"{', '.join(files)}) and this machine is offline, so it cannot be downloaded; put the "
        f"files there, pass --data-dir / $SAMON_DATA_DIR, or use dataset=synthetic")


def check_runnable(config: RunConfig, *, here: bool,
                   data_dir: str | os.PathLike[str] | None = None) -> None:
    """Raise ``NotRunnable`` if ``config`` cannot be trained (see the module docstring)."""
    _check_model(config)
    _check_subsets(config)
    if here:
        _check_device(config.device)
        _check_data(config, default_data_dir(data_dir))
