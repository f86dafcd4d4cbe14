"""The claims' cpu notes state what was measured here (issue 22): their verdict and part sentences
are the verdict function's own on runs carrying the recorded per-seed values
(``calibration.CPU_SEEDS``), and the measured cpu spreads are those values' spreads."""

from __future__ import annotations

import statistics

import pytest
from support.claim_results import results, verdict

from samon_core import claims
from samon_core.claims import calibration
from samon_core.claims.data import cpu_measured
from samon_core.claims.rules import RULES

# The ``records`` option each recorded metric is written to (None: the final test accuracy).
OPTION = {"accuracy": None, "sharpness@1": "sharp", "robust-l2": "robust",
          "corruption": "corruption", "gamma": "gamma_end"}
# What the option takes, from the recorded value: the fakes' gammas start at 1.0, so a recorded
# shift s ends at 1.0 + s.
AS_OPTION = {"gamma": lambda shift: 1.0 + shift}
# the claims judged on seeds' values whose note states a measurement (cost and blocks: ratios)
MEASURED = [c for c in claims.CLAIM_IDS if c in RULES and "Measured on the cpu size, " in
            claims.get_claim(c).cpu_note and "lockstep" not in claims.get_claim(c).cpu_note]


def _runs(claim_id: str) -> list:
    """Finished runs of the claim's methods whose records carry ``CPU_SEEDS``' values."""
    methods = {m for p in RULES[claim_id] for m in (p.a, p.b)}
    rec = calibration.CPU_SEEDS
    n = len(rec["accuracy"]["base"])
    accs = {m: list(rec["accuracy"].get(m, [70.0] * n)) for m in methods}
    opts = {m: [{OPTION[metric]: AS_OPTION.get(metric, float)(rec[metric][m][i]) for metric in rec
                 if OPTION.get(metric) and m in rec[metric]} for i in range(n)]
            for m in methods}
    return results(accs, **opts)


def test_the_measured_notes_are_the_claims_own_verdicts():
    assert {"accuracy", "no-norm", "sharper", "sparsity", "robustness", "corruption",
            "variants", "gamma-shift"} <= set(MEASURED)
    for claim_id in MEASURED:
        v = verdict(claim_id, _runs(claim_id), "cpu")
        outcome, seeds, sentences = cpu_measured(claim_id)
        assert outcome == v.verdict, claim_id
        deciding = [p["sentence"] for p in v.parts if p["decides"]]
        assert list(sentences) == deciding, claim_id
        note = claims.get_claim(claim_id).cpu_note
        assert f"{seeds} seeds" in note and f": {outcome}. " in note
        assert all(s in note for s in sentences)


@pytest.mark.parametrize("metric, digits", [("sharpness@1", 3), ("robust-l2", 1),
                                            ("corruption", 1), ("gamma", 3)])
def test_measured_cpu_spreads_are_the_recorded_values_spreads(metric, digits):
    s = calibration.spread("cpu", metric)
    assert s.source == calibration.MEASURED and "issue 22" in s.how
    for m, values in calibration.CPU_SEEDS[metric].items():
        assert s.sd[m] == pytest.approx(statistics.stdev(values), abs=0.05 * s.sd[m] + 1e-4)
        assert f" {statistics.mean(values):.{digits}f}" in s.how  # the mean it states


def test_a_note_follows_its_values():
    """Flip SAM-ON's robust values below SGD's: the generated part says 'behind' and the
    verdict changes, so nothing in the note is fixed text."""
    saved = calibration.CPU_SEEDS["robust-l2"]["norm"]
    try:
        calibration.CPU_SEEDS["robust-l2"]["norm"] = (1.0, 1.5, 0.5)
        outcome, _, sentences = cpu_measured("robustness")
        assert outcome == claims.NOT_CONSISTENT
        assert any(s.startswith("SAM-ON ended behind SGD") for s in sentences)
    finally:
        calibration.CPU_SEEDS["robust-l2"]["norm"] = saved


@pytest.mark.parametrize("claim_id", ["cost", "blocks"])
def test_the_cost_claims_notes_state_their_recorded_ratio(claim_id):
    ratio, low, high, seeds = calibration.CPU_RATIOS[claim_id]
    note = claims.get_claim(claim_id).cpu_note
    assert low < ratio < high
    assert f"{seeds} lockstep seeds" in note and f"took {ratio:.2f}x" in note
    assert f"95% interval {low:.2f} to {high:.2f}" in note
    assert (": consistent:" in note) == (high < 1)


def test_a_ratio_note_follows_its_interval():
    """An interval that reaches 1 is inconclusive; one above it is not consistent (the rule)."""
    from samon_core.claims.data import cpu_ratio_text
    saved = calibration.CPU_RATIOS["blocks"]
    try:
        calibration.CPU_RATIOS["blocks"] = (0.98, 0.95, 1.01, 3)
        assert ": inconclusive: " in cpu_ratio_text("blocks", "A", "B")
        calibration.CPU_RATIOS["blocks"] = (1.05, 1.02, 1.08, 3)
        text = cpu_ratio_text("blocks", "A", "B")
        assert ": not consistent: " in text and "took 1.05x" in text
        calibration.CPU_RATIOS["blocks"] = (0.997, 0.995, 0.999, 3)
        assert "to 0.999)" in cpu_ratio_text("blocks", "A", "B")  # never '1.00' below 1
    finally:
        calibration.CPU_RATIOS["blocks"] = saved
