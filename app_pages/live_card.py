"""Live's closing card: once every run of a comparison has finished, what it shows about the
paper's claims, on one bordered card a teacher can end a session with.

The rows come from ``samon_app.verdict_card`` (the claims' own verdicts on these runs); this
module lays them out and links to the Claims page, where a claim can be run with more seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from app_pages import common
from samon_app.reader import RunData, RunInfo
from samon_app.verdict_card import CardRow, verdict_card
from samon_app.verdicts import VERDICT_ICONS, verdict_sentence

# The Claims page as app.py registers it (common.py has no constant for it yet).
TITLE = "What your comparison shows"


def card_row_ui(row: CardRow) -> None:
    """One claim: its verdict's icon and statement, the verdict sentence, and why these runs
    may differ from the paper (what the lab measured at its CPU size behind the help icon)."""
    st.markdown(f"{VERDICT_ICONS[row.verdict.verdict]} **{row.claim.statement}**")
    st.markdown(verdict_sentence(row.verdict))
    if row.why:
        help_text = f"What the lab measured at its CPU size: {row.note}" if row.note else None
        st.caption(row.why, help=help_text)


def verdict_card_ui(infos: Sequence[RunInfo], data: Mapping[str, RunData]) -> int:
    """The card, only when every run of the group has finished (while runs train, the verdict
    lines under the charts say what they show so far). Returns the number of claim rows shown
    (0 when no card is shown)."""
    if not infos or any(i.state != "finished" for i in infos):
        return 0
    card = verdict_card(infos, data)
    with st.container(border=True, key="live_verdict_card"):
        st.subheader(TITLE, anchor=False)
        st.markdown(f"**{card.headline}**")
        for row in card.rows:
            card_row_ui(row)
        st.page_link(common.CLAIMS_PAGE, icon=":material/fact_check:",
                     label="Claims: run a setting with more seeds (or the GPU size) and see "
                           "each claim's numbers")
    return len(card.rows)
