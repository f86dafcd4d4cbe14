"""``python -m samon_core robustness RUN``: the robustness suite on a finished run's final weights.

    robustness RUN_ID [--images N] --owner-key KEY | --teacher-token-file PATH | --owner teacher

Like ``landscape RUN`` it adds records to a run, so it asks what the app's slices request asks:
one of the run's requesters (their owner key) or the teacher. The measurement itself is
``samon_core.train.robust_run`` (torch is imported only once the caller is allowed). Errors
follow the CLI's convention (samon_core.cli): bad input or a caller who may not act raise
``ValueError`` (one line, exit code 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from samon_core.catalog import choices, datasets
from samon_core.catalog.robustness import CORRUPTION_LABELS, DEFAULT_IMAGES, NORM_LABELS
from samon_core.owner_cli import add_acting_options
from samon_core.runs.files import METRICS_FILE, SUMMARY_FILE
from samon_core.runs.messages import clip
from samon_core.runs.store import RunStore


def add_robustness_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``robustness`` command under the CLI's subparsers ``sub``."""
    rb = sub.add_parser("robustness", parents=[common],
                        help="accuracy under PGD attacks and corruptions of a finished run")
    rb.add_argument("run_id")
    rb.add_argument("--suite", choices=choices.ROBUSTNESS[1:], default="standard",
                    help="which suite (catalog/robustness.py)")
    rb.add_argument("--images", type=int, default=None,
                    help=f"the first N test images (default: the run's robustness_images, "
                    f"{DEFAULT_IMAGES} unless set)")
    add_acting_options(rb, "measure the run's robustness")


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def describe(result: Mapping[str, Any]) -> str:
    """The result as a few lines: clean, each attack, each corruption's severities."""
    lines = [f"clean {_pct(result['clean_acc'])} on the first {result['images']} test images "
             f"({result['pgd_steps']}-step PGD; {result['seconds']:.1f} s)"]
    for norm in ("linf", "l2"):
        rows = [a for a in result["attacks"] if a["norm"] == norm]
        if rows:
            lines.append(f"  {NORM_LABELS[norm]} PGD: " + ", ".join(
                f"eps {a['label']} {_pct(a['acc'])}" for a in rows))
    names = dict.fromkeys(c["name"] for c in result["corruptions"])
    for name in names:
        rows = [c for c in result["corruptions"] if c["name"] == name]
        lines.append(f"  {CORRUPTION_LABELS.get(name, name)}: " + ", ".join(
            f"severity {c['severity']} {_pct(c['acc'])}" for c in rows))
    return "\n".join(lines)


def cmd_robustness(args: argparse.Namespace, store: RunStore) -> int:
    """Measure, for one of the run's requesters (``--owner-key``) or the teacher."""
    from samon_core.service.room import identify, require_someone
    from samon_core.service.settings import load_settings
    from samon_core.service.submit import acting_credentials

    run_id = args.run_id
    if not store.run_dir(run_id).is_dir():  # run_dir: ValueError for a malformed id
        raise ValueError(f"no run {clip(run_id)} in {clip(str(store.root))}")
    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be at least 1; got {args.images}")
    settings = load_settings()
    key, token = acting_credentials(args, settings, "robustness")
    ident = identify(key, token, store=store, settings=settings)
    require_someone(ident, run_id, "measuring the robustness")
    store.check_requester(run_id, ident.owner, is_teacher=ident.is_teacher,
                          action="measure the robustness of")
    from samon_core.train.robust_run import measure_finished_run  # torch only from here

    result = measure_finished_run(store, run_id, suite=args.suite, images=args.images,
                                  data_dir=datasets.data_dir())
    print(f"{run_id}: robustness added to {SUMMARY_FILE} and {METRICS_FILE}\n{describe(result)}")
    return 0
