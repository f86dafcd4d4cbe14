"""The paper's claims checked against the runs a page shows: the verdict under each chart.

The Live page's "What to look for" lines must not assert the paper's result: they say what the
user's own runs show. This module turns the runs on the page (``RunInfo`` + ``RunData``) into the
``RunResult``s of ``samon_core.claims`` and asks the claim's own verdict function, so Live and
the Claims page judge by the same rule (``samon_core.claims.stats``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from samon_app.reader import RunData, RunInfo
from samon_core.claims import RunResult, Verdict, get_claim

# The claim each Live view can be judged by.
VIEW_CLAIMS = {"accuracy": "accuracy", "sharpness": "sharper", "gamma": "gamma-shift",
               "speed": "cost"}


def run_results(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> list[RunResult]:
    """The page's runs as the claims' verdict functions read them."""
    out = []
    for info in infos:
        d = data.get(info.run_id)
        lockstep = tuple((info.summary or {}).get("lockstep") or ())
        seed = info.config.get("seed")
        out.append(RunResult(
            run_id=info.run_id, method=info.key, seed=int(seed) if isinstance(seed, int) else 0,
            state=info.state, records=tuple(d.records) if d else (), lockstep=lockstep,
            group=str(info.meta.get("group") or ""), epochs=int(info.config.get("epochs") or 0),
        ))
    return out


def view_verdict(view: str, infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> Verdict:
    """The verdict of the claim behind ``view`` on the runs shown."""
    claim = get_claim(VIEW_CLAIMS[view])
    return claim.verdict(run_results(infos, data))


def verdict_text(v: Verdict) -> str:
    """One line for under a chart: the verdict, its sentence and what would settle it."""
    label = {"consistent": "consistent with the paper",
             "not consistent": "not consistent with the paper",
             "inconclusive": "inconclusive"}.get(v.verdict, v.verdict)
    text = f"**Your runs: {label}{' (provisional)' if v.provisional else ''}.** {v.sentence}"
    if v.settle and v.verdict == "inconclusive":
        text += f" {v.settle}"
    return text
