"""The error rates of every claim's verdict rule, measured by simulation (issue 20).

For each claim, size and number of seeds (1, 2, 3, 5, 10) the rule of ``samon_core.claims``
(``claims.power``: the very parts and tests the verdicts apply) is run on simulated seeds drawn
with the seed spread recorded for that size (``claims.calibration``), under

* the null (no effect, every method equal): the rates of a false "consistent" and a false
  "not consistent";
* the non-inferiority boundary (SAM-ON worse than SAM-all by exactly the margin, the other parts
  at the paper's effect; claims with such a part): a false "consistent";
* the paper's effect: the power (consistent) and a false "not consistent".

Prints a markdown table (and the seeds needed for 80% power per claim and size) with the
command, the machine, the numpy version and the number of simulations:

    python bench/verdict_calibration.py --sims 20000
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samon_core.claims import CLAIM_IDS, calibration, power  # noqa: E402
from samon_core.claims.runsets import SIZES  # noqa: E402
from samon_core.train.hardware import cpu_model  # noqa: E402


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def table(claim_ids: list[str], sims: int, seed: int) -> list[str]:
    lines = ["| claim | size | seeds | false consistent (null) | false not consistent (null) "
             "| consistent at the margin | power (paper's effect) | not consistent (paper's "
             "effect) |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for claim in claim_ids:
        for size in SIZES:
            for n in power.SEED_COUNTS:
                r = power.table_row(claim, size, n, sims, seed)
                lines.append(f"| {claim} | {size} | {n} | {_pct(r.false_consistent)} | "
                             f"{_pct(r.false_not_consistent)} | {_pct(r.boundary_consistent)} | "
                             f"{_pct(r.power)} | {_pct(r.paper_not_consistent)} |")
    return lines


def needed(claim_ids: list[str]) -> list[str]:
    lines = ["| claim | " + " | ".join(SIZES) + " |", "| --- |" + " ---: |" * len(SIZES)]
    for claim in claim_ids:
        cells = []
        for size in SIZES:
            n = power.seeds_needed(claim, size)
            cells.append("no paper number" if n == 0 else
                         f"> {power.SEARCH[-1]}" if n is None else str(n))
        lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    return lines


def sources() -> list[str]:
    lines = []
    for size in SIZES:
        for metric, s in calibration.SPREADS[size].items():
            if metric == "beta":
                continue
            sd = ", ".join(f"{k} {v:g}" for k, v in s.sd.items())
            lines.append(f"- {size}, {metric}: sd {sd} ({s.source}: {s.how})")
        c = calibration.COST_SPREADS[size]
        lines.append(f"- {size}, cost: window cv {c.window_cv:g}, {c.windows} windows per run, "
                     f"per-seed ratio sd {c.seed_sd:g} ({c.source}: {c.how})")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=20000, help="experiments per row")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    ap.add_argument("--claims", default=",".join(CLAIM_IDS), help="comma-separated claim ids")
    args = ap.parse_args(argv)
    claim_ids = [c for c in args.claims.split(",") if c]
    unknown = sorted(set(claim_ids) - set(CLAIM_IDS))
    if unknown or args.sims < 100:
        ap.error(f"unknown claims {unknown}" if unknown else "--sims must be at least 100")
    start = time.time()
    print(f"Command: python bench/verdict_calibration.py --sims {args.sims} --seed {args.seed}")
    print(f"Machine: {cpu_model()}, Python {platform.python_version()}, numpy {np.__version__}; "
          f"{args.sims} simulated experiments per row\n")
    print("\n".join(table(claim_ids, args.sims, args.seed)))
    print("\nSeeds needed for 80% power at the paper's effect (2,000 experiments per count):\n")
    print("\n".join(needed(claim_ids)))
    print("\nSeed spreads used:\n")
    print("\n".join(sources()))
    print(f"\n({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
