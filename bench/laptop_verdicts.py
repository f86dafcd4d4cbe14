"""Record what a laptop showed for the claims judged from lockstep step times (cost, blocks): their
verdict at the cpu size on the finished claim runs of a store, by the claim's own verdict
function, written to ``samon_core/claims/laptop_verdicts.json`` (Home leads with it;
``samon_core.claims.laptop`` checks it when loaded). The claims judged from seeds are not written
here: their per-seed values live in ``calibration.CPU_SEEDS`` (printed below for comparison).
Claims without finished runs of every method and two seeds are left out (no verdict is not a
measurement). Trains nothing.

    python bench/laptop_verdicts.py --runs-dir /work/notes/claim_runs \\
        --runs "the robustness claim's cpu runs, seeds 0-2 (issue 22)"
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samon_core.claims import CLAIM_IDS, laptop  # noqa: E402
from samon_core.claims.collect import collect, index_runs  # noqa: E402
from samon_core.claims.cost import STEP_TIME_PAIRS  # noqa: E402
from samon_core.runs.store import RunStore  # noqa: E402
from samon_core.train.hardware import cpu_model  # noqa: E402


def measured(store: RunStore) -> dict[str, dict]:
    """Claim id -> its record, for every claim the store's finished cpu-size runs can judge."""
    index = [r for r in index_runs(store) if r.state == "finished"]
    out = {}
    for claim_id in CLAIM_IDS:
        if claim_id not in STEP_TIME_PAIRS:
            continue  # calibration.CPU_SEEDS holds their per-seed values
        got = collect(store, claim_id, "cpu", index=index)
        if got.missing or got.verdict is None:
            continue
        seeds = sorted({seed for _, seed in got.runs})
        record = laptop.record_of(got.verdict.as_dict(), seeds)
        if record is not None:
            out[claim_id] = record.model_dump(mode="json")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", required=True, help="the run store with the claims' cpu runs")
    p.add_argument("--runs", required=True, help="which runs, in words (shown on Home)")
    p.add_argument("--out", default=str(laptop.PATH))
    args = p.parse_args()
    claims = measured(RunStore(args.runs_dir))
    record = {
        "size": "cpu", "measured": datetime.date.today().isoformat(),
        "machine": f"{cpu_model()}, {_cores()} cores, Python {platform.python_version()}",
        "command": "python bench/laptop_verdicts.py --runs-dir RUNS --runs TEXT",
        "runs": args.runs, "claims": claims,
    }
    text = json.dumps(record, indent=1) + "\n"
    laptop.parse(text)  # refuse to write a record that would not load
    Path(args.out).write_text(text, encoding="utf-8")
    laptop.load.cache_clear()
    for claim_id, v in laptop.load().claims.items():
        held = sum(p.status == "holds" for p in v.parts)
        source = "written" if claim_id in claims else "calibration.CPU_SEEDS"
        print(f"{claim_id}: {v.verdict} ({held} of {len(v.parts)} parts hold, seeds "
              f"{list(v.seeds)}; {source})")
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
