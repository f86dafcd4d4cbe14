"""The paper's claims checked against the runs a page shows: the verdict under each chart.

The Live page's "What to look for" lines must not assert the paper's result: they say what the
user's own runs show. This module turns the runs on the page (``RunInfo`` + ``RunData``) into the
``RunResult``s of ``samon_core.claims`` and asks the claim's own verdict function, so Live and
the Claims page judge by the same rule (``samon_core.claims.stats``); ``view_line`` tells the
verdict in one line (``samon_app.claim_lines``), "so far" while runs still train.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from samon_app import claim_lines
from samon_app.claim_lines import ClaimLine
from samon_app.progress import is_active
from samon_app.reader import RunData, RunInfo
from samon_core.claims import (
    CONSISTENT,
    INCONCLUSIVE,
    NO_VERDICT,
    NOT_CONSISTENT,
    RunResult,
    get_claim,
)
from samon_core.claims.results import pair_key
from samon_core.claims.runsets import size_of

# How a verdict is marked beside its claim: a Material icon in the verdict's colour (the word
# itself is in the verdict's sentence, so the colour is never the only sign).
# VERDICT_ICON is the plain icon (for a widget's ``icon=``), VERDICT_ICONS the coloured markdown.
VERDICT_ICON = {CONSISTENT: ":material/check_circle:",
                NOT_CONSISTENT: ":material/cancel:",
                INCONCLUSIVE: ":material/help:",
                NO_VERDICT: ":material/explore:"}  # one seed: a direction, not a result
_VERDICT_COLOUR = {CONSISTENT: "green", NOT_CONSISTENT: "red", INCONCLUSIVE: "orange",
                   NO_VERDICT: "gray"}
VERDICT_ICONS = {v: f":{_VERDICT_COLOUR[v]}[{icon}]" for v, icon in VERDICT_ICON.items()}

# The claims each Live view can be judged by (the first: the view's own; the Robustness tab reads
# both the attacks and the corruptions of one record).
VIEW_CLAIMS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",), "sharpness": ("sharper",), "gamma": ("gamma-shift",),
    "speed": ("cost",), "robustness": ("robustness", "corruption")}


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
            pair_key=pair_key(info.config) if info.config else "",
        ))
    return out


def runs_size(infos: Sequence[RunInfo]) -> str | None:
    """The claim size all the runs were trained at (``runsets.size_of``), else None."""
    sizes = {size_of(dict(i.config)) for i in infos}
    return sizes.pop() if len(sizes) == 1 else None


def view_claims(view: str, infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> list[str]:
    """The claims of ``view`` that the runs shown can be judged on: every method of the claim
    among them, each of those runs measuring what it reads (``Claim.recorded_by``: runs trained
    with robustness off are not judged on robustness)."""
    keys = {i.key for i in infos}
    out = []
    for claim_id in VIEW_CLAIMS[view]:
        claim = get_claim(claim_id)
        runs = [i for i in infos if i.key in claim.methods]
        if set(claim.methods) <= keys and all(
                claim.recorded_by(i.config, data[i.run_id].records if i.run_id in data else ())
                for i in runs):
            out.append(claim_id)
    return out


def view_line(view: str, infos: Sequence[RunInfo], data: Mapping[str, RunData],
              claim_id: str | None = None) -> ClaimLine:
    """The verdict of the claim behind ``view`` (``claim_id``: another of its ``VIEW_CLAIMS``)
    on the runs shown, in one line with its details; "so far" while some of them train."""
    if claim_id is not None and claim_id not in VIEW_CLAIMS[view]:
        raise ValueError(f"claim {claim_id!r} is not one of the {view} view's "
                         f"({', '.join(VIEW_CLAIMS[view])})")
    claim = get_claim(claim_id or VIEW_CLAIMS[view][0])
    results = run_results(infos, data)
    v = claim.verdict(results, runs_size(infos))
    return claim_lines.claim_line(claim.id, v, results, any(is_active(i.state) for i in infos),
                                  claim_lines.details(v, statement=claim.statement))


def line_text(line: ClaimLine) -> str:
    """The line for under a chart: '**Your runs: not consistent with the paper.** SGD ended 2.6
    points ahead of SAM-ON, the paper's opposite; larger than the seed-to-seed noise.'"""
    numbers = line.numbers.text
    opposite = f", {claim_lines.OPPOSITE}" if line.numbers.against else ""
    return (f"**Your runs: {line.word[0].lower()}{line.word[1:]}.** "
            f"{numbers[0].upper()}{numbers[1:]}{opposite}; {line.why}.")
