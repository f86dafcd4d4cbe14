"""Search for a CPU setting where the paper's accuracy claims show: SGD / SAM-all / SAM-ON (and
optionally no-norm, random mask) trained in lockstep for a few seeds at a given setting.

Starts from the claims' ``cpu`` base config (``samon_core.claims.runsets.CPU_BASE``) and applies
``--set key=value`` overrides (any RunConfig field, parsed like the CLI's ``--set``); ``--rho``
sets one rho per method family (``all=0.05,norm=0.5``; the paper's values otherwise). Each seed
trains the methods as one lockstep group, so its wall time is the claim's cost per seed. Prints,
per method, the final test accuracy of every seed, mean +- standard deviation, the gap to SGD
against the seeds' spread, and the hardware, versions and load average; then the PAIRED
differences per seed (the methods of one seed share data draw, initialisation and batch order):
SAM-all and SAM-ON minus SGD and SAM-ON minus SAM-all, each with its 95% paired-t interval and the
accuracy claim's status (superiority over SGD; non-inferiority with ``rules.MARGINS['accuracy']``
for SAM-ON vs SAM-all), computed by ``samon_core.claims.stats`` (the verdicts' own functions; the
floor is a tenth of the largest per-method spread of this setting, as ``claims.calibration``'s).
The seeds' accuracies are appended to ``DIR/results.jsonl`` with ``--keep DIR``, so a later call
with ``--first-seed`` adds seeds to the same setting (``--from-results`` prints all of them).

Usage: python bench/cpu_claim_search.py --seeds 3 --set train_subset=2000 --set epochs=30
       [--first-seed 0] [--methods base,all,norm] [--rho all=0.05,norm=0.5] [--keep DIR]
       python bench/cpu_claim_search.py --from-results DIR/results.jsonl
Not part of the test suite (minutes per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from samon_core.claims import stats
from samon_core.claims.rules import MARGINS
from samon_core.claims.runsets import method_config
from samon_core.runs.config import RunConfig
from samon_core.runs.store import RunStore
from samon_core.train.hardware import cpu_model
from samon_core.train.lockstep import GroupJob, train_group


def _rhos(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = float(value)
    return out


def _configs(methods: list[str], overrides: list[str], rhos: dict[str, float]) -> list[RunConfig]:
    """Each method's cpu-size config (``method_config``: its variant's fields, e.g. ASAM's, kept)
    with the overrides applied on top, and its rho from ``rhos`` where given."""
    out = []
    for m in methods:
        cfg = method_config("cpu", m)
        if overrides:
            cfg = cfg.with_overrides(overrides)
        if m in rhos:
            cfg = cfg.replace(rho=rhos[m])
        out.append(cfg)
    return out


# (A, B, margin): the accuracy claim's parts (rules.py), A - B per seed; "norm" stands for the
# SAM-ON runs (``--on`` names another key, e.g. SAM-ON at another rho)
PAIRS: tuple[tuple[str, str, float], ...] = (
    ("all", "base", 0.0), ("norm", "base", 0.0), ("norm", "all", MARGINS["accuracy"]))


def print_paired(acc: dict[str, list[float]], on: str = "norm") -> None:
    """The paired differences of the accuracy claim's parts, with the verdict rule's interval."""
    spreads = [statistics.stdev(v) for v in acc.values() if len(v) > 1]
    floor = 0.1 * max(spreads) if spreads else 0.0
    for a, b, margin in PAIRS:
        a = on if a == "norm" else a
        if a not in acc or b not in acc:
            continue
        n = min(len(acc[a]), len(acc[b]))
        d = np.array(acc[a][:n]) - np.array(acc[b][:n])
        est = stats.paired(d[None], floor)
        dec = stats.decide(est, margin=margin, parts=len(PAIRS))
        test = "superiority" if margin == 0 else f"non-inferiority, margin {margin}"
        print(f"paired {a} - {b}: {float(est.effect[0]):+.2f} (95% {float(dec.low[0]):+.2f} to "
              f"{float(dec.high[0]):+.2f}), sd of differences {float(est.spread[0]):.2f}, "
              f"n={n}, {test}: {dec.status[0]}   per seed: "
              + " ".join(f"{x:+.2f}" for x in d))


def print_summary(acc: dict[str, list[float]], on: str = "norm") -> None:
    """Per method: mean +- sd and the gap to the first method; then the paired differences."""
    base = next(iter(acc.values()))
    for label, values in acc.items():
        mean = statistics.fmean(values)
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        gap = mean - statistics.fmean(base) if base else float("nan")
        print(f"{label:28s} {mean:6.2f} +- {sd:4.2f}  gap to first {gap:+6.2f}   "
              + " ".join(f"{v:.2f}" for v in values))
    print_paired(acc, on)
    # "norm" is SAM-ON's method key (catalog MethodSpec.key, the key of ``acc``), not a layer
    # name: with SAM-ON at another rho under another key, the paper's SAM-ON is paired too.
    if on != "norm" and "norm" in acc:
        print_paired({k: v for k, v in acc.items() if k != on})


def from_results(paths: list[str], on: str = "norm") -> None:
    """Print the summary of the seeds recorded in ``results.jsonl`` files (by family key), merged
    by seed (runs of one seed pair across stores: a run trains bit for bit alike alone or in a
    lockstep group). ``PATH:old=new`` renames a method key, e.g. ``...rho0.3/results.jsonl:
    norm=norm-rho0.3`` to set SAM-ON at another rho beside the paper's."""
    by_seed: dict[int, dict[str, float]] = {}
    walls: list[str] = []
    for spec in paths:
        path, _, rename = spec.partition(":")
        old, _, new = rename.partition("=")
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if not rows:
            raise SystemExit(f"{path}: no seeds recorded")
        for row in sorted(rows, key=lambda r: r["seed"]):
            accs = {(new if k == old and new else k): v for k, v in row["acc"].items()}
            by_seed.setdefault(row["seed"], {}).update(accs)
        walls.append(f"{path}: seeds {[r['seed'] for r in rows]}, wall per seed "
                     + ", ".join(f"{r['wall_s']:.0f} s (load {r['load']:.1f})" for r in rows))
    seeds = sorted(by_seed)
    keys = list(dict.fromkeys(k for s in seeds for k in by_seed[s]))
    missing = [(s, k) for s in seeds for k in keys if k not in by_seed[s]]
    if missing:  # paired differences need every method on every seed
        raise SystemExit(f"seed and method without a run: {missing}")
    for line in walls:
        print(f"# {line}")
    print_summary({k: [by_seed[s][k] for s in seeds] for k in keys}, on)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--methods", default="base,all,norm")
    ap.add_argument("--rho", default="", help="per method family, e.g. all=0.05,norm=0.5")
    ap.add_argument("--keep", default=None, help="run store folder to keep (default: temporary)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--from-results", nargs="+", default=None, metavar="PATH[:OLD=NEW]",
                    help="summarize results.jsonl files (merged by seed), train none")
    ap.add_argument("--on", default="norm", help="the key whose runs stand for SAM-ON in the "
                    "paired differences (with --from-results)")
    args = ap.parse_args()
    if args.from_results:
        from_results(args.from_results, args.on)
        return
    methods = args.methods.split(",")
    configs = _configs(methods, args.set, _rhos(args.rho))
    root = args.keep or tempfile.mkdtemp(prefix="claim-search-")
    store = RunStore(root)
    print(f"# {cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"python {platform.python_version()}, threads {torch.get_num_threads()}")
    print(f"# overrides {args.set} rho {args.rho or 'paper'}; load before "
          f"{os.getloadavg()[0]:.2f}")
    for c in configs:
        rho = c.resolved_rho() if c.method == "sam" else None
        print(f"#   {c.method_label()}: rho={rho} adaptive={c.adaptive} lr={c.lr} "
              f"epochs={c.epochs} n={c.train_subset} noise={c.label_noise} model={c.model} "
              f"data={c.dataset}")
    acc: dict[str, list[float]] = {m: [] for m in methods}
    walls = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        jobs = []
        for c in configs:
            cs = c.replace(seed=seed)
            rid = store.create_run(cs, {"owner": "bench"})
            jobs.append(GroupJob(cs, store.run_dir(rid)))
        t0 = time.perf_counter()
        summaries = train_group(jobs)
        walls.append(time.perf_counter() - t0)
        for m, s in zip(methods, summaries, strict=True):
            acc[m].append(100 * float(s.get("final_test_acc", float("nan"))))
        load = os.getloadavg()[0]
        print(f"seed {seed}: {walls[-1]:.0f} s, load {load:.2f}: "
              + ", ".join(f"{k} {v[-1]:.2f}" for k, v in acc.items()), flush=True)
        if args.keep:
            row = {"seed": seed, "wall_s": walls[-1], "load": load, "overrides": args.set,
                   "rho": args.rho, "acc": {k: v[-1] for k, v in acc.items()}}
            with open(os.path.join(root, "results.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    print_summary(acc)
    print(f"wall per seed: {statistics.fmean(walls):.0f} s (all methods, lockstep); "
          f"store {root}")


if __name__ == "__main__":
    main()
