"""Whether the workers can get a launch's CIFAR files, said before anything is queued.

A CIFAR run on a server without the files and without internet fails only once a worker picks
it up; the Launch page warns before the button instead. The facts (files present in the data
folder, download host reachable) are read by the page (samon_core/service/preflight.py, cached);
this module decides what they mean:

* files present, or missing but the host answers (the trainer downloads them): nothing to say;
* missing and offline, with workers on this machine (setting ``local_checks``, by default with
  the SQLite database): the runs would fail, so the button is disabled;
* missing and offline, with workers elsewhere (PostgreSQL): this machine's check may not be theirs,
  so the page warns without blocking (a worker without the data fails the run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from samon_core.catalog import DATASETS
from samon_core.catalog.datasets import CIFAR_LAYOUT


@dataclass(frozen=True)
class DataWarning:
    """The one warning a launch gets about its data, and whether it disables the button."""

    text: str
    blocks: bool


def cifar_datasets(datasets: Iterable[str]) -> list[str]:
    """The datasets of ``datasets`` that are read from CIFAR files, each once, in order."""
    return [d for d in dict.fromkeys(datasets) if d in CIFAR_LAYOUT]


def _name(dataset: str) -> str:
    """'cifar100' -> 'CIFAR-100' (the catalog's label without its remark)."""
    spec = DATASETS.get(dataset)
    return spec.label.split(" (")[0] if spec else dataset


def data_warning(datasets: Iterable[str], *, present: Mapping[str, bool], online: bool,
                 checks_here: bool, data_dir: str) -> DataWarning | None:
    """The warning for a launch training on ``datasets``, or None when the workers can get the
    data. ``present``: CIFAR dataset -> its files are in ``data_dir``; ``online``: the download
    host answers; ``checks_here``: the workers run on this machine."""
    missing = [d for d in cifar_datasets(datasets) if not present.get(d, False)]
    if not missing or online:
        return None
    name, folder = _name(missing[0]), CIFAR_LAYOUT[missing[0]].folder
    if checks_here:
        return DataWarning(
            f"{name} is not on this server (looked in {data_dir}) and the server is offline: "
            f"runs would fail. Use the synthetic set, or ask the teacher to put {folder}/ "
            "there (docs/deployment.md).", blocks=True)
    return DataWarning(
        f"{name} is not on this machine (looked in {data_dir}) and it is offline. The workers "
        "run elsewhere, so this check is this machine's and theirs may differ: if they cannot "
        f"get {folder}/ either, the runs will fail. The synthetic set always works.",
        blocks=False)
