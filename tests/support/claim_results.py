"""Constructed runs judged without a store: ``RunResult``s for a claim's verdict (``results``,
``cost_results``) and the ``RunInfo`` / ``RunData`` of a comparison group for the verdict card
(``group``, ``group_per_seed``), their records from ``support.records``."""

from __future__ import annotations

import numpy as np

from samon_app.reader import RunInfo, build_run_data
from samon_core import claims
from samon_core.claims.results import RunResult
from support.records import records

# ---------------------------------------------------------------------------------------------
# a claim's RunResults
# ---------------------------------------------------------------------------------------------


def results(values: dict[str, list[float]], *, state: str = "finished", paired: bool = True,
            **per_method) -> list:
    """RunResults: method key -> final accuracy per seed; ``per_method[key]`` adds record
    options (dicts of ``records`` keywords, one per seed or one for all). ``paired``: the runs
    of a seed share seed and data draw (a claim's runs do), else nothing pairs them."""
    out = []
    for method, accs in values.items():
        opts = per_method.get(method, {})
        for seed, acc in enumerate(accs):
            o = opts[seed] if isinstance(opts, list) else opts
            out.append(RunResult(f"{method}-{seed}", method, seed, state,
                                 tuple(records(acc, **o)),
                                 pair_key=f"seed={seed}|data=0" if paired else ""))
    return out


def verdict(claim_id: str, rs: list, size: str | None = "cpu"):
    return claims.get_claim(claim_id).verdict(rs, size)


def cost_results(times: dict[str, list[float]], lockstep: bool, windows: int = 20,
                 epochs: int = 5, noise: float = 0.02, seed: int = 0) -> list[RunResult]:
    """Lockstep seeds whose runs record ``windows`` step windows per epoch around the step
    times ``times[method][seed]``, each window with its own relative ``noise``."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(len(times["norm"])):
        ids = [f"{m}-{s}" for m in times]
        load = np.exp(rng.normal(0, 0.2, epochs * windows))  # shared by the runs of the seed
        for m in times:
            ts = list(times[m][s] * load * np.exp(rng.normal(0, noise, epochs * windows)))
            out.append(RunResult(f"{m}-{s}", m, s, "finished",
                                 tuple(records(50.0, epochs=epochs, windows=windows,
                                               step_time=[float(t) for t in ts])),
                                 tuple(ids) if lockstep else (), group=f"g{s}"))
    return out


# ---------------------------------------------------------------------------------------------
# a comparison group for the verdict card
# ---------------------------------------------------------------------------------------------

CONFIG = {"model": "tiny_resnet", "dataset": "synthetic", "epochs": 3}
# per method: final test accuracy (%) per seed, and record options that make every claim hold
# (SAM-ON sharper, its gammas shifted more, its steps 20% cheaper than SAM-all's)
GOOD = {
    "base": ([40.0, 40.3, 39.8], {"sharp": 0.10, "gamma_end": 1.01, "step_time": 0.03}),
    "all": ([45.0, 45.2, 44.9], {"sharp": 0.15, "gamma_end": 1.02, "step_time": 0.050}),
    "norm": ([47.0, 47.3, 46.8], {"sharp": 0.30, "gamma_end": 1.10, "step_time": 0.040}),
}


def group(spec: dict, *, seeds: int = 3, state: str = "finished", lockstep: bool = True,
          config: dict | None = None) -> tuple[list[RunInfo], dict]:
    """RunInfos and RunData of a group: ``spec`` method key -> (accuracies per seed, options);
    runs of one seed trained in lockstep (their summaries name each other) unless not."""
    infos, data = [], {}
    for method, (accs, opts) in spec.items():
        for seed in range(seeds):
            rid = f"{method}-{seed}"
            mates = [f"{m}-{seed}" for m in spec] if lockstep else []
            infos.append(RunInfo(rid, method, method, method, "#000000", state,
                                 {**CONFIG, **(config or {}), "seed": seed},
                                 {"group": "g"}, {"state": state}, {"lockstep": mates}))
            data[rid] = build_run_data(rid, records(accs[seed], **opts))
    return infos, data


def group_per_seed(spec: dict, config: dict):
    """``group`` with record options per seed (``spec``: method key -> (accuracies, one dict
    of options per seed)), all finished in lockstep."""
    infos, data = [], {}
    for method, (accs, opts) in spec.items():
        for seed, acc in enumerate(accs):
            rid = f"{method}-{seed}"
            mates = [f"{m}-{seed}" for m in spec]
            infos.append(RunInfo(rid, method, method, method, "#000000", "finished",
                                 {**CONFIG, **config, "seed": seed},
                                 {"group": "g"}, {"state": "finished"}, {"lockstep": mates}))
            data[rid] = build_run_data(rid, records(acc, **opts[seed]))
    return infos, data
