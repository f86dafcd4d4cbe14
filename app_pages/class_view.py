"""Class verdict: the page for the projector. Every seed of the teacher's class experiment,
whoever trained it, pooled into the claim's verdict: how many seeds it rests on, the effect with
its 95% interval narrowing as seeds arrive, the power reached, and each seed as a dot (the
viewer's own highlighted). Below it, last week's experiment when the teacher loaded one.

In everyone's menu and read-only: it needs no key and shows none (no token, no key, no
student's name), so the teacher can open it on the projector's browser without signing in.
"""

from __future__ import annotations

import streamlit as st

from app_pages import checks, class_ui, identity, stores

st.title("Class verdict")
room = checks.room()
if room.experiment is None and room.replay is None:
    st.info("No class experiment yet: the teacher starts one on the Room page, then every "
            "student adds a seed from Home or Claims.", icon=":material/groups:")
if room.experiment is not None:
    with st.container(border=True, key="class_view_current"):
        st.subheader("This class", anchor=False)
        class_ui.class_verdict_ui(stores.root(), room.experiment, "class_view", identity.owner())
if room.replay is not None:
    with st.container(border=True, key="class_view_replay"):
        st.subheader("Replay: an earlier class", anchor=False)
        class_ui.class_verdict_ui(stores.root(), room.replay, "class_view_replay", None,
                                  replay=True)
