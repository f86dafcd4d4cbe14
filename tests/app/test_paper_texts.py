"""What the pages say about the paper's numbers, built from ``samon_core.paper`` (and the lab's
own FLOP estimate, labelled as such), and the Home / Playground pages showing it. No torch.

Each text is checked against the numbers it is built from, so the two cannot disagree."""

from __future__ import annotations

import re
import sys

import pytest
from streamlit.testing.v1 import AppTest
from support.paths import REPO

if str(REPO) not in sys.path:  # the pages import app_pages
    sys.path.insert(0, str(REPO))

from samon_app import paper_tables  # noqa: E402
from samon_app.speed import expected_help  # noqa: E402
from samon_core import paper  # noqa: E402
from samon_core.catalog.methods import VARIANTS  # noqa: E402
from samon_core.runs.estimate import STEP_COST_F, STEP_COST_LABEL  # noqa: E402

TIMEOUT = 60  # seconds per script run (a shared 2-core machine)


# --- the step cost: the lab's estimate, not the paper's ---------------------------------------


def test_step_cost_is_labelled_the_labs_estimate_wherever_it_is_shown():
    assert not hasattr(paper, "STEP_COST_F")  # not among the paper's numbers
    assert STEP_COST_LABEL == "the lab's FLOP estimate"
    f = STEP_COST_F
    numbers = f"SGD {f['base']:g}F, SAM-all {f['all']:g}F"
    for text in (paper_tables.step_cost_help(), expected_help()):
        assert text.startswith("The lab's FLOP estimate") and numbers in text, text
        assert f"about {f['norm']:g}F" in text
    assert "not a number from the paper" in paper_tables.step_cost_help()
    assert "estimate" in paper_tables.STEP_COST_METRIC
    assert paper_tables.step_cost_text() == f"≈ {f['norm']:g}F vs {f['all']:g}F"
    from samon_core import claims  # the claims layer quotes it too

    cost = claims.get_claim("cost").paper_text
    assert STEP_COST_LABEL in cost and "not the paper's" in cost


# --- the reference code's names -----------------------------------------------------------------


def test_authors_command_and_fidelity_doc_use_the_reference_codes_names():
    """The reference repository's optimizers are SAM_ON / ASAM_ON in sam_on.py, selected with
    --only_norm / --no_norm (they were SAM_BN / ASAM_BN in sam_bn.py with --only_bn before)."""
    assert "--minimizer=ASAM_ON" in paper.AUTHORS_COMMAND and "--only_norm" in paper.AUTHORS_COMMAND
    doc = (REPO / "docs" / "fidelity.md").read_text()
    for old in ("sam_bn.py", "SAM_BN", "ASAM_BN", "--only_bn", "--no_bn"):
        assert old not in doc and old not in paper.AUTHORS_COMMAND, old
    for new in ("sam_on.py", "SAM_ON", "--only_norm", "--no_norm"):
        assert new in doc, new


# --- what the poster leaves open ----------------------------------------------------------------


def test_the_inferred_ssam_f_label_is_marked_and_explained():
    inferred = [c for c in paper.SPARSE_PERTURBATION if c.inferred]
    assert [(c.method, c.sparsity) for c in inferred] == [("SSAM-F", 0.9995)]
    header = paper_tables.sparsity_table().splitlines()[0]
    cells = [c.strip() for c in header.strip("|").split("|")][1:]
    marked = [c for c in cells if c.endswith(paper_tables.INFERRED_MARK)]
    assert marked == ["SSAM-F" + paper_tables.INFERRED_MARK]
    assert cells.index(marked[0]) == paper.SPARSE_PERTURBATION.index(inferred[0])
    note = paper_tables.sparsity_note()
    assert note.startswith(paper_tables.INFERRED_MARK) and "SSAM-F at 99.95%" in note
    assert "four methods for five columns" in note


def test_the_table_notes_quote_the_numbers_they_compare():
    """The rho of the table's runs is not known: the note quotes the figure's reading at the
    figure's best rhos beside the table's means, from the same constants."""
    rho, fig = paper.DEFAULT_RHO[("none", "l2")], paper.FIGURE_ACCURACY[("none", "l2")]
    acc = paper.TEST_ACCURACY
    note = paper.TABLE_RHO_NOTE
    assert "does not say which rho" in note
    assert f"({rho['all']} and {rho['norm']})" in note
    assert f"{fig['all']:.1f}% and {fig['norm']:.1f}%" in note
    assert f"{acc['all'].mean:.2f}% and {acc['norm'].mean:.2f}%" in note
    aug = paper.TABLE_AUGMENT_NOTE
    assert f"SGD {acc['base'].mean:.2f}%" in aug and f"{paper.FORET_SGD_BASIC_ACCURACY:.1f}%" in aug
    assert "infers crop + flip" in aug and paper.TABLE_AUGMENT == "crop_flip"
    assert paper_tables.table_settings_note() == f"{aug} {note}"


# --- SAM-ON's rho against SAM-all's -------------------------------------------------------------


def test_the_rho_ratio_sentence_matches_the_rho_table():
    """Each variant's "Nx: a vs b" equals DEFAULT_RHO's SAM-ON / SAM-all, and the range spans the
    smallest and largest ratio: ASAM elementwise is 2x (10 vs 5), so "5 to 10" would be wrong."""
    text = paper_tables.rho_ratio_text()
    ratios = paper.rho_ratios()
    assert ratios[("elementwise", "l2")] == 2.0 and ratios[("none", "l2")] == 5.0
    found = re.findall(r"(?:\(|; )([^;()]+?) ([\d.]+)x: ([\d.]+) vs ([\d.]+)", text)
    assert len(found) == len(ratios)
    for (name, ratio, norm, all_), key in zip(found, ratios, strict=True):
        assert name == (VARIANTS[key] or "SAM")
        assert float(norm) == paper.DEFAULT_RHO[key]["norm"]
        assert float(all_) == paper.DEFAULT_RHO[key]["all"]
        assert float(ratio) == pytest.approx(float(norm) / float(all_))
    lo, hi = min(ratios.values()), max(ratios.values())
    assert text.startswith(f"SAM-ON's best rho is {lo:g} to {hi:g} times SAM-all's")
    assert "5 to 10" not in text


# --- the pages ----------------------------------------------------------------------------------


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def test_home_shows_the_notes_and_labels_the_cost_as_the_labs_estimate():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    body = _texts(at)
    assert paper_tables.sparsity_note() in body
    assert paper_tables.table_settings_note() in body
    assert paper_tables.rho_ratio_text() in body and "5 to 10" not in body
    labels = [m.label for m in at.metric]
    assert paper_tables.STEP_COST_METRIC in labels and "Cost per step" not in labels


def test_playground_quotes_the_rho_ratios_from_the_paper_module():
    at = AppTest.from_file(str(REPO / "app_pages" / "playground.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    body = _texts(at)
    assert paper_tables.playground_rho_note() in body and "5 to 10" not in body
