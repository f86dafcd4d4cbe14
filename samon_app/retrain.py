"""'Train my own': the same comparison again, with a seed that no run in the store has used.

A comparison whose runs were all reused teaches nothing about training. To watch it train, the
student queues the same configs again; the job service would reuse identical runs (seed
included), so the new request takes the smallest seed for which none of its runs exists yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from samon_core.runs.config import RunConfig

_SEED_SUFFIX = re.compile(r" \(seed \d+\)$")  # submit_group's label of one seed of several


def group_configs(runs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, RunConfig], int]:
    """The comparison behind a group's runs (dicts with ``config`` and ``meta``): one config per
    setting (the runs of one setting differ by seed only; the lowest seed is kept), labelled as
    launched, and the number of seeds per setting (the most any setting has). Raises
    ``ValueError`` for a config this version cannot read."""
    settings: dict[str, list[tuple[RunConfig, str]]] = {}
    for run in runs:
        config = RunConfig.from_dict(run.get("config") or {})
        label = _SEED_SUFFIX.sub("", str((run.get("meta") or {}).get("label") or ""))
        key = json.dumps({k: v for k, v in config.to_dict().items() if k != "seed"},
                         sort_keys=True, default=str)
        settings.setdefault(key, []).append((config, label or config.method_label()))
    out: dict[str, RunConfig] = {}
    for found in settings.values():
        config, label = min(found, key=lambda c: c[0].seed)
        name, n = label, 1
        while name in out:  # two settings of one method (e.g. two rho): labels must differ
            n += 1
            name = f"{label} #{n}"
        out[name] = config
    seeds = max((len(found) for found in settings.values()), default=1)
    return out, seeds


def fresh_seed(configs: Sequence[RunConfig], seeds: int, existing: set[str]) -> int:
    """The smallest seed s >= 1 for which no config with seeds s .. s + seeds - 1 has its
    ``config_hash`` in ``existing``: nothing of such a request can be reused."""
    s = 1
    while any(c.replace(seed=s + i).config_hash() in existing
              for c in configs for i in range(seeds)):
        s += 1
    return s


def retrain_text(labels: Sequence[str], seed: int, seeds: int, duration: str) -> str:
    """What 'Train my own' does, said before the click."""
    names = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
    which = f"seed {seed}" if seeds == 1 else f"seeds {seed} to {seed + seeds - 1}"
    return (f"Trains {names} again with {which}, so that nothing can be reused: about "
            f"{duration} on this machine.")
