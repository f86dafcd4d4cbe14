"""The display helpers every page shares: a chart with plotly's toolbar (``plot``), a figure
built once for all sessions (``figure``), the caption under a chart (``look_for``), and plotly
imported in the background once per server (``warm_up``).

What belongs here: a small helper of *how* something is shown that several pages use and that
reads nothing itself. What does not: reads of the store (``reads``), the workers (``workers``),
who the user is (``identity``), the link's checks (``link_params``), damaged runs
(``problems``), launching (``launching``), the pages' paths (``paths``); the view models'
functions are imported from samon_app where they live.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import streamlit as st

from samon_app.charts import plotly_config
from samon_app.reader import RunData, RunInfo, chart_signature


@st.cache_resource(show_spinner=False)
def warm_up() -> bool:
    """Import plotly in the background once per server, so that the first chart does not wait
    for it. Not pandas: plotly takes pandas from ``sys.modules`` without waiting for an import in
    progress, so a page building a figure while this thread was half-way through pandas crashed
    ("partially initialized module 'pandas'"); the pages that need pandas import it themselves."""

    def work() -> None:
        with contextlib.suppress(Exception):
            import plotly.graph_objects  # noqa: F401 - loaded for later, not used here

    threading.Thread(target=work, name="samon-warm-up", daemon=True).start()
    return True


def look_for(text: str) -> None:
    """The one or two sentences under a chart that say what to look for."""
    st.caption(f"**What to look for:** {text}")


@st.cache_resource(max_entries=512, ttl=900, show_spinner=False)
def _cached_figure(name: str, signature: tuple, options: tuple, _build: Callable[[], Any]) -> Any:
    return _build()


def figure(name: str, build: Callable[[], Any], infos: list[RunInfo], data: dict[str, RunData],
           kinds: tuple[str, ...], options: tuple = ()) -> Any:
    """``build()``, cached for all sessions under the runs' chart signature (ids, labels,
    colours, number of records of ``kinds``) and ``options``: 20 browsers polling the same runs
    build each figure once per new record, not 20 times a second. The figure is shared: never
    change it."""
    return _cached_figure(name, chart_signature(infos, data, kinds), options, build)


def plot(fig: Any, key: str) -> None:
    """A chart with plotly's toolbar (zoom, PNG download named after the chart): every page."""
    st.plotly_chart(fig, key=key, config=plotly_config(f"samon-{key}"), width="stretch")

