"""``python -m samon_core claim ...``: list the claims, train a claim's runs, print a verdict.

    claim list                                   the claims and the runs each needs
    claim run ID --size cpu [--seeds N]          train what is missing (finished identical runs
                                                 are reused), one lockstep group per seed, then
                                                 print the verdict (--owner NAME, with
                                                 --owner-key for a registered name)
    claim verdict ID [--size cpu] [--json]       the verdict of the runs in the store (no
                                                 training); exit 0 even when inconclusive, exit 2
                                                 with one line when the runs are missing

Errors follow the CLI's convention (samon_core.cli): bad input raises ``ValueError`` (one line,
exit code 2). Torch is imported only by ``claim run``, when there is something to train.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from samon_core.catalog.choices import MAX_SEEDS
from samon_core.claims.collect import collect, index_runs, require_runs
from samon_core.claims.data import CLAIM_IDS, CLAIMS, Claim, get_claim
from samon_core.claims.power import COST_CLAIMS
from samon_core.claims.runsets import SIZE_TEXT, SIZES, with_seeds
from samon_core.claims.verdicts import Verdict
from samon_core.owner_cli import add_owner_options
from samon_core.runs.config import RunConfig
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore

if TYPE_CHECKING:  # the service is imported inside the commands that use it
    from samon_core.service.room import Identity


def _seeds(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be an integer; got {text[:20]!r}") from None
    if not 1 <= n <= MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"--seeds must be in 1..{MAX_SEEDS}; got {n}")
    return n


def add_claim_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``claim`` command group under the CLI's subparsers ``sub``."""
    cl = sub.add_parser("claim", help="check the paper's claims against your runs")
    csub = cl.add_subparsers(dest="claim_command", required=True)
    csub.add_parser("list", help="the paper's claims", parents=[common])
    for name, text in (("run", "train a claim's runs (what is missing), then its verdict"),
                       ("verdict", "the verdict of the runs in the store (no training)")):
        p = csub.add_parser(name, help=text, parents=[common])
        p.add_argument("claim_id", metavar="ID", help=f"one of {', '.join(CLAIM_IDS)}")
        p.add_argument("--size", choices=SIZES, default="cpu",
                       # argparse %-formats help texts: a literal "20%" must be "20%%"
                       help="; ".join(f"{k}: {v}" for k, v in SIZE_TEXT.items()).replace("%", "%%"))
        p.add_argument("--seeds", type=_seeds, default=None if name == "verdict" else 3,
                       help="seeds 0..N-1 (run: default 3; verdict: every seed in the store)")
        if name == "run":
            p.add_argument("--data-dir", default=None, help="dataset folder")
            add_owner_options(p, "the runs")
            p.add_argument("--progress", choices=("lines", "none"), default="lines")
        else:
            p.add_argument("--json", action="store_true", help="print the verdict as JSON")


def cmd_claim(args: argparse.Namespace, store: RunStore) -> int:
    handler = {"list": _list, "run": _run, "verdict": _verdict}[args.claim_command]
    return handler(args, store)


def _list(args: argparse.Namespace, store: RunStore) -> int:
    for c in CLAIMS:
        runs = ", ".join(c.runs("cpu"))
        print(f"{c.id}: {c.statement}\n    paper: {c.paper_text}\n    runs: {runs}")
    return 0


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _print_verdict(verdict: Verdict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_finite(verdict.as_dict()), indent=2, allow_nan=False, default=str))
        return
    print(f"{verdict.claim}: {verdict.verdict.upper()}"
          f"{' (provisional)' if verdict.provisional else ''}\n  {verdict.sentence}")
    if verdict.settle:
        print(f"  What would settle it: {verdict.settle}")


def _verdict(args: argparse.Namespace, store: RunStore) -> int:
    get_claim(args.claim_id)
    verdict = require_runs(collect(store, args.claim_id, args.size, args.seeds), store.root)
    _print_verdict(verdict, args.json)
    return 0


# ---------------------------------------------------------------------------------------------
# claim run
# ---------------------------------------------------------------------------------------------


def plan_seed(claim: Claim, configs: list[tuple[str, RunConfig]],
              store: RunStore) -> tuple[list[tuple[str, RunConfig]], list[str]]:
    """What to train for one seed's configs: (label, config) of the missing runs, and the ids of
    the finished identical runs reused. For ``cost`` and ``blocks`` a seed whose finished runs
    did not train in one lockstep group is trained again in full (fair step times need it)."""
    finished: dict[str, tuple[float, str, tuple[str, ...]]] = {}
    for run in index_runs(store):
        if run.state == RunState.FINISHED:
            h = run.config.config_hash()
            if h not in finished or run.created > finished[h][0]:
                finished[h] = (run.created, run.run_id, run.lockstep)
    found = {label: finished.get(cfg.config_hash()) for label, cfg in configs}
    reused = [f[1] for f in found.values() if f is not None]
    if claim.id in COST_CLAIMS and reused:
        ids = set(reused)
        if len(reused) < len(configs) or any(not ids <= set(f[2]) | {f[1]}
                                             for f in found.values() if f):
            return list(configs), []
    return [(label, cfg) for label, cfg in configs if found[label] is None], reused


def claim_preset(claim: Claim) -> str:
    """The ``preset`` a claim's runs are recorded with (the room's ``presets_only`` lets it
    through)."""
    from samon_core.service.room import CLAIM_PREFIX

    return f"{CLAIM_PREFIX}{claim.id}"


def _progress(label: str, seed: int, epochs: int, enabled: bool):
    def callback(rec: dict) -> None:
        if enabled and rec.get("kind") == "epoch":
            print(f"  seed {seed} {label}: epoch {rec['epoch']}/{epochs}, test accuracy "
                  f"{rec['test_acc']:.1%}", file=sys.stderr, flush=True)
    return callback


def claim_group(claim: Claim, size: str, seed: int) -> str:
    """The comparison a claim's runs of one seed train in: one name for whoever trains them
    (``admission.CLAIM_GROUP_PREFIX``: a claim's group is shared, and only ``claim run`` joins
    it)."""
    from samon_core.service.admission import CLAIM_GROUP_PREFIX

    return f"{CLAIM_GROUP_PREFIX}{claim.id}-{size}-seed{seed}"


def _train_seed(claim: Claim, size: str, seed: int, todo: list[tuple[str, RunConfig]],
                store: RunStore, args: argparse.Namespace, ident: Identity) -> int:
    """Train ``todo`` now, as one lockstep group in the claim's group for ``seed``, through the
    command line's one "train now" path (``submit.train_now``: admitted in the queue's
    transaction, under ``--owner``); the number of runs that did not finish. A run a worker took
    first is trained there; the verdict waits for nothing it does not find finished."""
    from samon_core.service.submit import train_now

    configs = dict(todo)

    def watch(label: str, run_id: str, here: bool) -> Callable[[dict], None]:
        return _progress(label, seed, configs[label].epochs, args.progress == "lines")

    trained = train_now(configs, owner=args.owner, ident=ident, owner_key=args.owner_key,
                        preset=claim_preset(claim), claim_group=claim_group(claim, size, seed),
                        data_dir=args.data_dir, watch=watch, store=store)
    return sum(1 for run in trained
               if run.summary is not None and run.summary.get("state") != RunState.FINISHED)


def _run(args: argparse.Namespace, store: RunStore) -> int:
    from samon_core.service.settings import load_settings
    from samon_core.service.submit import check_cli_request

    claim = get_claim(args.claim_id)
    all_configs = with_seeds(claim.runs(args.size), args.seeds)
    # who may train under --owner, the room's locks, the limits and preflight for every run
    # before the first run folder exists (the app's submit's checks)
    ident = check_cli_request(args, all_configs, claim_preset(claim), store, load_settings())
    failed = 0
    for seed in range(args.seeds):
        configs = [(label, cfg) for label, cfg in all_configs if cfg.seed == seed]
        todo, reused = plan_seed(claim, configs, store)
        print(f"seed {seed}: {len(reused)} finished run(s) reused, {len(todo)} to train"
              f"{' together (lockstep)' if len(todo) > 1 else ''}", file=sys.stderr)
        if todo:
            failed += _train_seed(claim, args.size, seed, todo, store, args, ident)
    verdict = require_runs(collect(store, claim.id, args.size, args.seeds), store.root)
    _print_verdict(verdict, False)
    return 1 if failed else 0
