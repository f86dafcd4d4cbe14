"""Search for a CPU setting where the paper's accuracy claims show: SGD / SAM-all / SAM-ON (and
optionally no-norm, random mask) trained in lockstep for a few seeds at a given setting.

Starts from the claims' ``cpu`` base config (``samon_core.claims.runsets.CPU_BASE``) and applies
``--set key=value`` overrides (any RunConfig field, parsed like the CLI's ``--set``); ``--rho``
sets one rho per method family (``all=0.05,norm=0.5``; the paper's values otherwise). Each seed
trains the methods as one lockstep group, so its wall time is the claim's cost per seed. Prints,
per method, the final test accuracy of every seed, mean +- standard deviation, the gap to SGD
against the seeds' spread, and the hardware, versions and load average.

Usage: python bench/cpu_claim_search.py --seeds 3 --set train_subset=2000 --set epochs=30
       [--methods base,all,norm] [--rho all=0.05,norm=0.5] [--keep DIR]
Not part of the test suite (minutes per seed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch

from samon_core.claims.runsets import CPU_BASE, method_config
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
    base = CPU_BASE.with_overrides(overrides) if overrides else CPU_BASE
    out = []
    for m in methods:
        cfg = method_config("cpu", m)
        # method_config builds on CPU_BASE; carry the overrides over (method fields kept)
        fields = {k: v for k, v in base.to_dict().items()
                  if k not in ("method", "scope", "rho")}
        cfg = cfg.replace(**fields)
        if m in rhos:
            cfg = cfg.replace(rho=rhos[m])
        out.append(cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--methods", default="base,all,norm")
    ap.add_argument("--rho", default="", help="per method family, e.g. all=0.05,norm=0.5")
    ap.add_argument("--keep", default=None, help="run store folder to keep (default: temporary)")
    args = ap.parse_args()
    methods = args.methods.split(",")
    configs = _configs(methods, args.set, _rhos(args.rho))
    root = args.keep or tempfile.mkdtemp(prefix="claim-search-")
    store = RunStore(root)
    print(f"# {cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"python {platform.python_version()}, threads {torch.get_num_threads()}")
    print(f"# overrides {args.set} rho {args.rho or 'paper'}; load before "
          f"{os.getloadavg()[0]:.2f}")
    for c in configs:
        print(f"#   {c.method_label()}: rho={c.rho} lr={c.lr} epochs={c.epochs} "
              f"n={c.train_subset} noise={c.label_noise} model={c.model}")
    acc: dict[str, list[float]] = {c.method_label(): [] for c in configs}
    walls = []
    for seed in range(args.seeds):
        jobs = []
        for c in configs:
            cs = c.replace(seed=seed)
            rid = store.create_run(cs, {"owner": "bench"})
            jobs.append(GroupJob(cs, store.run_dir(rid)))
        t0 = time.perf_counter()
        summaries = train_group(jobs)
        walls.append(time.perf_counter() - t0)
        for c, s in zip(configs, summaries, strict=True):
            acc[c.method_label()].append(100 * float(s.get("final_test_acc", float("nan"))))
        print(f"seed {seed}: {walls[-1]:.0f} s, load {os.getloadavg()[0]:.2f}: "
              + ", ".join(f"{k} {v[-1]:.2f}" for k, v in acc.items()), flush=True)
    base = acc.get(configs[0].method_label(), [])
    for label, values in acc.items():
        mean = statistics.fmean(values)
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        gap = mean - statistics.fmean(base) if base else float("nan")
        print(f"{label:28s} {mean:6.2f} +- {sd:4.2f}  gap to first {gap:+6.2f}   "
              + " ".join(f"{v:.2f}" for v in values))
    print(f"wall per seed: {statistics.fmean(walls):.0f} s (all methods, lockstep); "
          f"store {root}")


if __name__ == "__main__":
    main()
