"""The Playground's link follows the chart's own sliders: a few lines of local JavaScript (no
download, nothing from outside the page) that write the ρ and step of the chart into the
address bar and into the page's share box, with no server round trip.

Why it is safe to write the address bar behind Streamlit's back: Streamlit's next rerun sends
the address's query string to the server, which repopulates ``st.query_params`` from it
(Streamlit 1.67: ``ScriptRunContext.reset`` / ``populate_from_query_string``; a widget change
first re-reads ``window.location``). So a page run after an in-chart move reads the moved ρ and
step and draws the chart where the user left it. A parameter equal to its default is removed, as
Streamlit does for its bound widgets. The script polls the chart (every 150 ms) instead of
listening to plotly events: it survives the chart being replaced on a rerun.

The share box's link comes from the server (``identity_view.share_link``: no name, no key); the
script changes only ``pg_rho`` and ``pg_step`` in it.
"""

from __future__ import annotations

import html

from samon_app.playground import param

CHART_KEY = "playground_map"  # the chart's Streamlit key: its element has class st-key-<key>
BOX_ID = "samon-pg-share"

_SCRIPT = """
<script>
(() => {
  if (window.__samonPgLink) { return; }
  window.__samonPgLink = true;
  const PARAMS = {rho: "%(rho)s", step: "%(step)s"};
  // name -> value of the chart's sliders; a default value maps to null (the parameter goes)
  const positions = (gd) => {
    const out = {};
    const defaults = (gd.layout.meta && gd.layout.meta.url_defaults) || {};
    for (const s of gd.layout.sliders || []) {
      const name = PARAMS[s.name];
      const step = name && s.steps[s.active || 0];
      if (!step) { continue; }
      out[name] = step.value === defaults[s.name] ? null : step.value;
    }
    return out;
  };
  const apply = (url, values) => {
    let changed = false;
    for (const [name, value] of Object.entries(values)) {
      if (value === null && url.searchParams.has(name)) {
        url.searchParams.delete(name); changed = true;
      } else if (value !== null && url.searchParams.get(name) !== value) {
        url.searchParams.set(name, value); changed = true;
      }
    }
    return changed;
  };
  setInterval(() => {
    const gd = document.querySelector(".st-key-%(chart)s .js-plotly-plot");
    if (!gd || !gd.layout) { return; }
    const values = positions(gd);
    const here = new URL(window.location.href);
    if (apply(here, values)) { window.history.replaceState(window.history.state, "", here); }
    const box = document.getElementById("%(box)s");
    if (box && box.dataset.base) {
      const link = new URL(box.dataset.base, window.location.href);
      apply(link, values);
      if (box.value !== link.toString()) { box.value = link.toString(); }
    }
  }, 150);
  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("#%(box)s-copy")) { return; }
    const box = document.getElementById("%(box)s");
    box.select();
    if (navigator.clipboard) { navigator.clipboard.writeText(box.value).catch(() => {}); }
    else { document.execCommand("copy"); }  // plain http on a LAN: no clipboard API
  });
})();
</script>
"""


def link_script() -> str:
    """The script (constant: it reads everything from the page)."""
    return _SCRIPT % {"rho": param("rho"), "step": param("step"), "chart": CHART_KEY,
                      "box": BOX_ID}


def share_box_html(link: str) -> str:
    """The share box: the server's link (the script keeps its ρ and step current) and a copy
    button."""
    value = html.escape(link, quote=True)
    return (
        f'<div style="display:flex;gap:6px;align-items:center">'
        f'<input id="{BOX_ID}" readonly value="{value}" data-base="{value}" '
        'style="flex:1;font-family:monospace;font-size:13px;padding:6px 8px;border:1px solid '
        '#dee2e6;border-radius:6px;background:#f8f9fa;color:#212529" '
        'aria-label="Link to this picture">'
        f'<button id="{BOX_ID}-copy" type="button" style="padding:5px 12px;border:1px solid '
        '#ced4da;border-radius:6px;background:white;cursor:pointer">Copy</button></div>'
    )
