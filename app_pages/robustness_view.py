"""The Robustness tab of Live and Compare: robust accuracy against eps per norm (one curve per
method), accuracy under corruptions, the sentence that reads them, and the poster's table as a
separate reference. The numbers come from ``samon_app.robustness``; nothing here computes."""

from __future__ import annotations

import streamlit as st

from app_pages import common, live_card, paths
from samon_app import charts
from samon_app.claim_lines import topic
from samon_app.robustness import (
    POSTER_NOTE,
    corruption_bars,
    curves,
    measured,
    missing,
    poster_rows,
    reading_sentence,
)
from samon_app.verdicts import view_claims
from samon_core.catalog.robustness import NORM_LABELS, NORMS


def robustness_ui(infos: list, data: dict, key: str) -> None:
    """The tab for the runs ``infos`` (``key``: a prefix that keeps widget keys unique)."""
    norm = st.segmented_control("Attack", list(NORMS), default=NORMS[0], key=f"{key}_norm",
                                required=True, format_func=lambda n: f"{NORM_LABELS[n]} PGD")
    found = curves(infos, data, norm)
    common.plot(common.figure(f"{key}_robust", lambda: charts.robustness_figure(found, norm),
                              infos, data, ("robustness",), (norm,)),
                key=f"{key}_robust_{norm}")
    common.look_for(reading_sentence(found))
    if found:
        common.plot(common.figure(f"{key}_corrupt",
                                  lambda: charts.corruption_figure(corruption_bars(infos, data)),
                                  infos, data, ("robustness",)), key=f"{key}_corrupt")
        common.look_for("accuracy on the same test images after Gaussian noise, Gaussian "
                        "blur, lower contrast and JPEG compression, each at three severities "
                        "(CIFAR-10-C's 1, 3 and 5): the small-image stand-in for the poster's "
                        "out-of-distribution test sets.")
    claims_ui(infos, data, key)
    without = missing(infos, data)
    if without:
        st.caption(f"{len(without)} finished run(s) have no robustness results (trained with "
                   f"robustness off). Their requester or the teacher can add them on a worker "
                   f"machine: `python -m samon_core robustness {without[0].run_id}`.")
    elif not measured(infos, data):
        st.caption("Runs with robustness on (the presets' default) measure it after their last "
                   "epoch.")
    st.markdown("**The poster's numbers**: robust accuracy (%) of ViT-S/32 on ImageNet, a "
                "reference beside your runs, not one of them.")
    st.dataframe(poster_rows(), hide_index=True, width="stretch", key=f"{key}_poster")
    st.caption(POSTER_NOTE)


def claims_ui(infos: list, data: dict, key: str) -> None:
    """The robustness and corruption claims' verdicts on these runs (``samon_app.verdicts``), one
    line each with its details, and the way to the claims' cards; nothing for runs that cannot
    be judged on them (a method missing, robustness off)."""
    judged = view_claims("robustness", infos, data)
    for claim_id in judged:
        st.markdown(f"**{topic(claim_id)}**")
        live_card.view_verdict_ui("robustness", infos, data, key=f"{key}_verdict_{claim_id}",
                                  claim_id=claim_id)
    if judged:
        st.page_link(paths.CLAIMS_PAGE, icon=":material/fact_check:",
                     label=f"Claims: the {' and '.join(judged)} "
                           f"{'claim' if len(judged) == 1 else 'claims'} with more seeds, and "
                           "what the lab measured on a laptop")
