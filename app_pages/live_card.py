"""Live's closing card: once every run of a comparison has finished, what it shows about the
paper's claims, on one bordered card a teacher can end a session with and a student reads in ten
seconds.

The rows come from ``samon_app.verdict_card`` (the claims' own verdicts on these runs): one line
per claim (icon, claim, the numbers in words, the verdict and its reason), and the rule, the
tests, the intervals and why these runs may differ from the paper's behind an expander per
claim. This module lays them out and links to the Claims page, where a claim can be run with
more seeds. ``claim_line_ui`` draws the same line and expander under Live's and Compare's charts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from app_pages import paths
from samon_app.claim_lines import ClaimLine
from samon_app.reader import RunData, RunInfo
from samon_app.verdict_card import CardRow, verdict_card
from samon_app.verdicts import VERDICT_ICONS, line_text, view_line
from samon_core.runs.states import RunState

TITLE = "What your comparison shows"
DETAILS = "Details: the test, the numbers, the caveats"


def claim_line_ui(line: ClaimLine, key: str) -> None:
    """One claim: its verdict's icon and line, then its details behind an expander."""
    st.markdown(f"{VERDICT_ICONS[line.verdict]} {line.markdown()}")
    if line.details:
        with st.expander(DETAILS, key=key):
            st.markdown("\n\n".join(line.details))


def view_verdict_ui(view: str, infos: Sequence[RunInfo], data: Mapping[str, RunData],
                    key: str, claim_id: str | None = None) -> None:
    """Under a chart: what the user's own runs show about the claim behind ``view`` (or its
    ``claim_id``), in one line ('Your runs: ...', "so far" while they train), the details
    behind an expander."""
    line = view_line(view, infos, data, claim_id)
    st.markdown(line_text(line))
    if line.details:
        with st.expander(DETAILS, key=key):
            st.markdown("\n\n".join(line.details))


def card_row_ui(row: CardRow) -> None:
    """One claim of the card (its line, and the details behind the expander)."""
    assert row.line is not None
    claim_line_ui(row.line, key=f"card_details_{row.claim.id}")
    if row.laptop:
        st.caption(row.laptop)


def verdict_card_ui(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> int:
    """The card, only when every run of the group has finished (while runs train, the verdict
    lines under the charts say what they show so far). Returns the number of claim rows shown
    (0 when no card is shown)."""
    if not infos or any(i.state != RunState.FINISHED for i in infos):
        return 0
    card = verdict_card(infos, data)
    with st.container(border=True, key="live_verdict_card"):
        st.subheader(TITLE, anchor=False)
        st.markdown(f"**{card.headline}**")
        for row in card.rows:
            card_row_ui(row)
        st.page_link(paths.CLAIMS_PAGE, icon=":material/fact_check:",
                     label="Claims: run a setting with more seeds (or the GPU size) and see "
                           "each claim's numbers")
    return len(card.rows)
