"""Claims: the paper's claims (``claims.CLAIMS``), each checked against runs you launch from its
card, with a
verdict (consistent / not consistent / inconclusive) and the numbers behind it; at the end the
verdicts on one screen, to close a session.

Everything computed comes from ``samon_core.claims`` (no torch here); this page lays it out.
Launching goes through ``service.submit_group`` with the sidebar's owner, so finished identical
runs are reused and a claim's runs train together (one comparison group: lockstep).
"""

from __future__ import annotations

import streamlit as st

from app_pages import class_ui, common, identity, launching, reads, stores, workers
from samon_app.charts.claim_card import chart_data, claim_figure
from samon_app.estimates import estimate_text
from samon_app.formatting import seeds_text
from samon_app.markup import md_escape
from samon_app.progress import colored_bars_css, is_active, method_bar_color
from samon_app.verdicts import VERDICT_ICON
from samon_core import claims, service
from samon_core.claims import calibration, power
from samon_core.claims.collect import Collected
from samon_core.claims.results import method_name
from samon_core.claims.runsets import with_seeds
from samon_core.runs.states import ACTIVE_STATES, RunState

# Seeds per claim run asked from this page (a visitor's browser): fewer than a request's
# ``choices.MAX_SEEDS`` (the Launch form, the Room, ``claim run``), a claim being several runs.
PAGE_MAX_SEEDS = 5
DEFAULT_SEEDS = 3
# Still coming: queued, training, or interrupted (recovery queues it again from its checkpoint).
ACTIVE = ACTIVE_STATES | {RunState.INTERRUPTED}
_QUEUED = "_claims_queued"  # (claim id, runs, owner) of the launch the page was run again for
VERDICT_BOX = {claims.CONSISTENT: st.success, claims.NOT_CONSISTENT: st.error,
               claims.INCONCLUSIVE: st.warning, claims.NO_VERDICT: st.info}


# ---------------------------------------------------------------------------------------------
# reads (shared by all sessions, at most a second old)
# ---------------------------------------------------------------------------------------------


@st.cache_resource(ttl=1.0, show_spinner=False, max_entries=4)
def _index(root_dir: str) -> list:
    return claims.index_runs(stores.store_at(root_dir))


@st.cache_resource(ttl=1.0, show_spinner=False, max_entries=128)
def _collected(root_dir: str, claim_id: str, size: str, seeds: int) -> Collected:
    return claims.collect(stores.store_at(root_dir), claim_id, size, seeds, index=_index(root_dir))


def collected(claim_id: str, size: str, seeds: int) -> Collected:
    return _collected(stores.root(), claim_id, size, seeds)


# ---------------------------------------------------------------------------------------------
# UI pieces (each returns plain values)
# ---------------------------------------------------------------------------------------------


def choice_ui(claim: claims.Claim) -> tuple[str, int]:
    """The size and the number of seeds of one card."""
    c1, c2 = st.columns([3, 1])
    with c1:
        size = st.radio("Size", claims.SIZES, key=f"size_{claim.id}", horizontal=True,
                        format_func=lambda s: s, help="\n\n".join(
                            f"**{k}**: {v}" for k, v in claims.SIZE_TEXT.items()))
        st.caption(claims.SIZE_TEXT[size])
        st.caption(power_text(claim, size))
    with c2:
        seeds = st.number_input("Seeds", 1, PAGE_MAX_SEEDS, DEFAULT_SEEDS, key=f"seeds_{claim.id}",
                                help="Seeds 0..N-1. With one seed there is no verdict: the "
                                "card shows the direction only.")
    return size, int(seeds)


def power_text(claim: claims.Claim, size: str) -> str:
    """'Seeds: the accuracy claim needs about N seeds for 80% power ...' with where the spread
    behind it comes from (``claims.power``, the same simulation as bench/verdict_calibration)."""
    sources = sorted({s.source for metric in power.parts_metrics(claim.id, size)
                      if (s := calibration.spread(size, metric)) is not None})
    if claim.id in power.COST_CLAIMS:  # step times, not seeds
        spreads = calibration.BLOCKS_COST_SPREADS if claim.id == "blocks" else \
            calibration.COST_SPREADS
        sources = [spreads[size].source]
    where = f" (seed spread: {', '.join(sources)}; see the Verdicts section of docs/fidelity.md)"
    return f"**Seeds:** the {claim.id} claim {power.seeds_needed_text(claim.id, size)}{where}."


def launch_ui(claim: claims.Claim, size: str, seeds: int) -> bool:
    """The list of runs the card needs and the one button that queues exactly them."""
    runs = with_seeds(claim.runs(size), seeds)
    st.caption("Runs: " + ", ".join(dict.fromkeys(label for label, _ in runs))
               + f", {seeds_text(0, seeds)} ({len(runs)} runs; finished identical runs are "
               "reused)")
    st.caption(estimate_text(workers.preset_estimate(claim.runs(size), seeds)))
    blocked = launching.launch_block()
    return st.button(f"Launch these {len(runs)} runs", key=f"launch_{claim.id}",
                     icon=":material/rocket_launch:", disabled=blocked is not None, help=blocked)


def launch(claim: claims.Claim, size: str, seeds: int) -> list[str] | None:
    """Queue the card's runs for the sidebar's owner (a new name is registered first); their
    ids, or None (reason shown)."""
    me = identity.launch_owner()
    if me is None:
        return None
    try:
        _group, ids = service.submit_group(claim.runs(size), owner=me,
                                           preset=f"claim:{claim.id}", seeds=seeds,
                                           store=stores.store(), owner_key=identity.owner_key(),
                                           teacher_token=identity.teacher_token())
    except ValueError as exc:  # LimitExceeded, NotRunnable
        identity.launch_failed()  # a name registered for this launch is given back
        st.error(f"Not launched: {md_escape(exc, 500)}", icon=":material/error:")
        return None
    except Exception as exc:  # noqa: BLE001 - the queue or the store: said, not raised
        identity.launch_failed()
        st.error(f"Not launched: {md_escape(f'{type(exc).__name__}: {exc}', 500)}",
                 icon=":material/error:")
        return None
    identity.launch_succeeded()
    reads.clear_caches()
    _index.clear()
    _collected.clear()
    workers.ensure_workers()
    return ids


def progress_ui(got: Collected) -> bool:
    """One progress bar per run of the card, in its method's colour (grey for a run that stopped
    before it finished); True while any run is queued or training."""
    active = False
    colors = {}
    for (method, seed), run in got.runs.items():
        done = got.epochs_done.get((method, seed), 0)
        total = run.config.epochs
        key = f"claimbar_{got.claim}_{method}_{seed}"
        colors[key] = method_bar_color(method, run.state)
        with st.container(key=key):
            st.progress(min(1.0, done / total) if total else 0.0,
                        text=f"{method_name(method)}, seed {seed}: {run.state}, "
                        f"epoch {done}/{total}")
        active = active or run.state in ACTIVE
    if colors:
        st.html(colored_bars_css(colors))
    if got.missing:
        st.caption(f"Not launched yet: {', '.join(got.missing)}.")
    return active


def verdict_label(verdict: claims.Verdict, training: bool) -> str:
    """The verdict's word, with 'so far' while some of its runs still train (the one-seed
    case keeps the verdict's own word: ``provisional``)."""
    if training:
        return f"{verdict.verdict} (so far: runs still training)"
    return verdict.verdict + (" (provisional)" if verdict.provisional else "")


def verdict_ui(claim: claims.Claim, verdict: claims.Verdict | None,
               training: bool = False) -> None:
    """The verdict, its sentence, what would settle it, and the chart of its evidence."""
    if verdict is None:
        st.info("No verdict yet: launch the runs above (or wait for their first epoch).",
                icon=":material/hourglass_empty:")
        return
    head = verdict_label(verdict, training).upper()
    VERDICT_BOX[verdict.verdict](f"**{head}.** {verdict.sentence}",
                                 icon=VERDICT_ICON[verdict.verdict])
    if verdict.settle:
        st.caption(f"**What would settle it:** {verdict.settle}")
    data = chart_data(verdict)
    if data.bars:
        common.plot(claim_figure(data), key=f"claim_chart_{claim.id}")
    for note in data.notes:
        st.caption(note)


def status_ui(claim: claims.Claim, size: str, seeds: int) -> None:
    """Progress and verdict of a card (a fragment: polls while its runs train)."""
    got = collected(claim.id, size, seeds)
    progress_ui(got)
    verdict_ui(claim, got.verdict, any(is_active(r.state) for r in got.runs.values()))


def card_ui(claim: claims.Claim) -> tuple[str, int]:
    """One claim: statement, the paper's numbers, size and seeds, launch, progress, verdict.
    Returns the chosen (size, seeds)."""
    with st.container(border=True):
        st.subheader(claim.title)
        st.markdown(claim.statement)
        st.caption(f"**Paper:** {claim.paper_text}")
        size, seeds = choice_ui(claim)
        if size == "cpu" and claim.cpu_note:
            box = st.warning if claim.cpu_shows is False else st.info
            box(claim.cpu_note, icon=":material/laptop:")
        if launch_ui(claim, size, seeds):
            ids = launch(claim, size, seeds)
            if ids is not None:
                # Run the page again: a name registered by this launch is then the sidebar's
                # (its box, its line, the link's box), not 'guest' drawn before the launch.
                st.session_state[_QUEUED] = (claim.id, len(ids), identity.owner())
                st.rerun()
        queued = st.session_state.get(_QUEUED)
        if queued and queued[0] == claim.id:
            st.session_state.pop(_QUEUED)
            st.success(f"Queued {queued[1]} runs for {md_escape(queued[2], 60)}.")
        got = collected(claim.id, size, seeds)
        polling = any(r.state in ACTIVE for r in got.runs.values())
        st.fragment(run_every=2.0 if polling else None)(status_ui)(claim, size, seeds)
    return size, seeds


def summary_ui(choices: dict[str, tuple[str, int]]) -> list[dict[str, str]]:
    """Every verdict on one screen (each at its card's size and seeds); the rows shown."""
    rows = []
    for claim in claims.CLAIMS:
        size, seeds = choices[claim.id]
        got = collected(claim.id, size, seeds)
        v = got.verdict
        training = any(is_active(r.state) for r in got.runs.values())
        rows.append({
            "claim": claim.title,
            "size": f"{size}, {seeds} seed{'s' if seeds != 1 else ''}",
            "verdict": "not run yet" if v is None else verdict_label(v, training),
            "in one sentence": "" if v is None else v.sentence,
        })
    st.dataframe(rows, hide_index=True, width="stretch", key="claims_summary")
    return rows


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------

st.title("Claims")
st.markdown(
    f"The lab tests {len(claims.CLAIMS)} of the paper's claims. Here you check each against "
    "**your own runs**: a card lists "
    "the runs a claim needs, launches them, and says whether your results are *consistent* "
    "with the claim, *not consistent*, or *inconclusive*, with the numbers behind the verdict. "
    "Each comparison the paper makes is tested on its own: the per-seed differences of runs "
    "that share seed and data (a paired t-test), with a 95% interval; 'beats' needs the whole "
    "interval above 0, 'at least as good' above a stated margin. Noise alone gives a "
    "*consistent* (or *not consistent*) verdict at most 2.5% of the time; with one seed there "
    "is no verdict, only a direction. Small CPU runs often cannot show what 200 epochs on "
    "CIFAR-100 show: then the honest verdict is *inconclusive*, and each card says how many "
    "seeds the paper's effect would need at its size."
)
class_ui.add_seed_ui("claims")
chosen = {claim.id: card_ui(claim) for claim in claims.CLAIMS}
st.header(f"All {len(claims.CLAIMS)} verdicts")
summary_ui(chosen)
