"""The paper's claims, checked against your own runs: verdicts, not assertions.

Mueller, Vlaar, Rolnick & Hein, "Normalization Layers Are All That Sharpness-Aware Minimization
Needs" (NeurIPS 2023) makes the claims the lab tests (``CLAIMS``, in ``data.py``): accuracy,
no-norm, sharper, sparsity, gamma-shift, cost, and the poster's robustness, corruption,
base-optimizer, variant and selected-block claims. Each is data (``data.Claim``: statement, the
paper's numbers, the runs it needs per size ``cpu`` / ``gpu`` / ``paper``) with a pure verdict
function from run results to a ``Verdict``: ``consistent``, ``not consistent`` or
``inconclusive``, the evidence in numbers and one plain sentence (``no verdict`` from one seed).
The statistical rule is in ``stats``, each claim's comparisons in ``rules``, their measured error
rates in ``power``.

    runsets.py     the runs per size (valid RunConfigs, shared between claims)
    stats.py       the rule: paired / Welch t-tests, 95% intervals, superiority and
                   non-inferiority, Bonferroni refutation, the parts combined
    rules.py       each claim's parts (the paper's comparisons), margins, words
    parts.py       one part judged on runs, with its sentence
    calibration.py the seed spread per metric and size, with how it was measured
    power.py       the rule simulated: error rates, power, seeds needed
    results.py     RunResult and the numbers read from metric records
    verdicts.py    Verdict and five verdict functions; cost.py the cost verdict (step samples)
    data.py     the claims
    collect.py  a claim's runs in the store, and their verdict

No torch, no streamlit.
"""

from samon_core.claims.collect import Collected, MissingRuns, collect, index_runs
from samon_core.claims.data import BY_ID, CLAIM_IDS, CLAIMS, Claim, get_claim
from samon_core.claims.results import RunResult
from samon_core.claims.runsets import SIZE_TEXT, SIZES
from samon_core.claims.verdicts import (
    CONSISTENT,
    INCONCLUSIVE,
    NO_VERDICT,
    NOT_CONSISTENT,
    VERDICTS,
    Verdict,
)

__all__ = [
    "BY_ID", "CLAIMS", "CLAIM_IDS", "CONSISTENT", "INCONCLUSIVE", "NOT_CONSISTENT", "NO_VERDICT",
    "SIZES",
    "SIZE_TEXT", "VERDICTS", "Claim", "Collected", "MissingRuns", "RunResult", "Verdict",
    "collect", "get_claim", "index_runs",
]
