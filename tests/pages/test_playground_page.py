"""The Playground page (``app_pages/playground.py``) with ``streamlit.testing``'s AppTest, and its
pure builders (``samon_app/playground.py``, ``samon_app/charts/playground*.py``).

The page renders; moving a Streamlit slider recomputes the figure; the chart's own sliders (ρ
and the step) start where the link says and keep their URL parameters across reruns; bad URL
values fall back to the defaults with a note; for every ρ of the grid the sentences and the table
the chart shows are those of that ρ's own trajectories, and its frames draw them.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest
from support.paths import REPO

if str(REPO) not in sys.path:  # the page imports app_pages
    sys.path.insert(0, str(REPO))

from samon_app import playground as pg  # noqa: E402  (the page's view model)
from samon_app.charts import playground as chart  # noqa: E402
from samon_app.charts import playground_landscape as land  # noqa: E402
from samon_app.charts import playground_link as link  # noqa: E402
from samon_core import toy  # noqa: E402

PAGE = str(REPO / "app_pages" / "playground.py")
TIMEOUT = 60  # seconds per script run (a shared 2-core machine)


def page(**query: str | list[str]) -> AppTest:
    """The page run once, with ``?pg_<name>=value`` query parameters."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    for name, value in query.items():
        at.query_params[pg.param(name)] = value
    return rerun(at)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def spec(at: AppTest) -> dict[str, Any]:
    """The chart's figure as sent to the browser."""
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def step_frames(sp: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in sp["frames"] if f["group"] == "step"]


def sliders(sp: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in sp["layout"].get("sliders", [])}


def shown_rho(sp: dict[str, Any]) -> float:
    s = sliders(sp)["rho"]
    return float(s["steps"][s["active"]]["value"])


def paths(sp: dict[str, Any]) -> dict[str, Any]:
    """Method label -> its path trace on the map (the ρ shown)."""
    return {t["name"]: t for t in sp["data"] if t.get("name") in pg.KEYS
            and t.get("mode") == "lines" and "xaxis" not in t}


def named(sp: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    return next((i, t) for i, t in enumerate(sp["data"]) if t.get("name") == name)


def chart_text(sp: dict[str, Any]) -> str:
    """The sentences the chart shows now."""
    return chart.plotly_to_text(named(sp, "what happened")[1]["text"][0])


def slider(at: AppTest, name: str):
    return at.slider(key=pg.param(name))


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def plain(sentence: str) -> str:
    return sentence.replace("**", "")


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------


def test_the_page_renders_the_default_picture():
    at = page()
    sp = spec(at)
    s = toy.minima.suggested
    assert list(paths(sp)) == ["GD", "SAM", "ASAM", "SAM-ON"]
    assert len(step_frames(sp)) == s.steps + 1 and len(sp["frames"]) == s.steps + 22
    assert sp["layout"]["images"][0]["source"].startswith("data:image/png;base64,")
    assert slider(at, "steps").value == s.steps and shown_rho(sp) == s.rho
    assert sliders(sp)["step"]["active"] == s.steps  # the step shown defaults to the end
    assert len(sliders(sp)["step"]["steps"]) == s.steps + 1  # one step control, up to Steps
    with pytest.raises(KeyError):
        slider(at, "step")  # no second "Step shown" widget (item 15)
    with pytest.raises(KeyError):
        slider(at, "rho")  # rho is the chart's
    assert not at.warning
    oc = toy.outcomes(toy.minima, toy.run_methods(toy.minima, s), s.rho)
    assert oc["gd"].basin == "sharp" and oc["sam"].basin == "flat"
    assert ("With these settings GD ends in the sharp minimum's bowl; SAM, ASAM and SAM-ON "
            "end in the flat minimum's bowl.") in " ".join(chart_text(sp).split())


def test_moving_a_streamlit_slider_recomputes_the_grid():
    at = page()
    before = paths(spec(at))
    slider(at, "lr").set_value(0.05)
    rerun(at)
    after = paths(spec(at))
    assert after["SAM"]["x"] != before["SAM"]["x"] and after["GD"]["x"] != before["GD"]["x"]
    assert shown_rho(spec(at)) == toy.minima.suggested.rho  # rho stays where it was


def test_the_chart_sliders_round_trip_through_the_url():
    """Item 15: what the URL says about the chart's sliders is what the chart shows, and it
    survives the reruns other controls cause (the link still holds every setting)."""
    at = page(rho="0.55", step="10", steps="40")
    sp = spec(at)
    assert shown_rho(sp) == 0.55 and sliders(sp)["step"]["active"] == 10
    assert len(step_frames(sp)) == 41
    at.button_group(key=pg.param("methods")).set_value(["GD", "SAM-ON"])
    rerun(at)
    slider(at, "lr").set_value(0.05)
    rerun(at)
    # (a widget writes its own parameter from the browser, which AppTest has not)
    for name, value in (("rho", "0.55"), ("step", "10"), ("steps", "40")):
        assert at.query_params[pg.param(name)] == value, name
    sp = spec(at)
    assert shown_rho(sp) == 0.55 and sliders(sp)["step"]["active"] == 10
    assert list(paths(sp)) == ["GD", "SAM-ON"]
    # what the browser's script writes after an in-chart move is read on the next run
    at.query_params[pg.param("rho")] = "0.2"
    at.query_params[pg.param("step")] = "3"
    rerun(at)
    assert shown_rho(spec(at)) == 0.2 and sliders(spec(at))["step"]["active"] == 3


def test_the_step_is_clamped_to_steps():
    at = page(step="200", steps="80")  # 'Step shown reads 200 when Steps is 80'
    step = sliders(spec(at))["step"]
    assert step["active"] == 80 and step["steps"][step["active"]]["value"] == "80"
    slider(at, "steps").set_value(30)
    rerun(at)
    assert sliders(spec(at))["step"]["active"] == 30 and len(step_frames(spec(at))) == 31


def test_url_parameters_reproduce_the_picture():
    query = {"surface": "Valley", "methods": ["GD", "SAM-ON"], "rho": "0.55", "steps": "40",
             "step": "10", "x0": "1.5"}
    linked = page(**query)
    assert slider(linked, "steps").value == 40 and slider(linked, "x0").value == 1.5
    assert linked.button_group(key=pg.param("surface")).value == "Valley"
    sp = spec(linked)
    # the same settings made by hand (the chart's sliders as the browser's script writes them)
    by_hand = page()
    by_hand.button_group(key=pg.param("surface")).set_value("Valley")
    rerun(by_hand)
    by_hand.button_group(key=pg.param("methods")).set_value(["GD", "SAM-ON"])
    for name, value in (("steps", 40), ("x0", 1.5)):
        slider(by_hand, name).set_value(value)
    by_hand.query_params[pg.param("rho")] = "0.55"
    by_hand.query_params[pg.param("step")] = "10"
    rerun(by_hand)
    assert spec(by_hand) == sp
    for name in pg.KNOBS:  # ... and every widget tells the browser to keep it in the URL
        assert slider(linked, name).proto.query_param_key == pg.param(name)


def test_bad_url_values_fall_back_to_the_defaults_with_a_note():
    at = page(rho="abc", steps="9999", x0="nan", step="-3", surface="Nope",
              methods=["GD", "XYZ"])
    s = toy.minima.suggested
    sp = spec(at)
    assert shown_rho(sp) == s.rho and slider(at, "steps").value == s.steps
    assert slider(at, "x0").value == s.start[0] and sliders(sp)["step"]["active"] == s.steps
    notes = "\n".join(w.value for w in at.warning)
    for bad in ("pg_rho=abc", "pg_steps=9999", "pg_x0=nan", "pg_step=-3", "pg_surface=Nope",
                "`XYZ`"):
        assert bad in notes
    assert "using 0.30" in notes and "using 80" in notes and "using the end" in notes
    assert list(paths(sp)) == ["GD"]  # the valid part of the link is kept


def test_a_rho_between_grid_points_is_snapped_with_a_note():
    at = page(rho="0.33")
    assert shown_rho(spec(at)) == 0.35
    assert "steps of 0.05: showing ρ = 0.35" in "\n".join(w.value for w in at.warning)


def test_switching_the_surface_loads_its_settings():
    at = page(rho="0.9", step="5")
    at.button_group(key=pg.param("surface")).set_value("Rescaling")
    rerun(at)
    s = toy.rescaling.suggested
    sp = spec(at)
    assert shown_rho(sp) == s.rho and slider(at, "steps").value == s.steps
    assert sliders(sp)["step"]["active"] == s.steps
    assert pg.param("rho") not in at.query_params and pg.param("step") not in at.query_params
    assert sp["layout"]["xaxis"]["range"] == list(toy.rescaling.bounds[:2])
    text = " ".join(chart_text(sp).split())
    assert "Smallest γ at the end: GD" in text and "largest: SAM-ON" in text
    slider(at, "lr").set_value(0.2)
    rerun(at)
    assert slider(at, "lr").value == 0.2
    at.button(key=pg.param("reset")).click()
    rerun(at)
    assert slider(at, "lr").value == s.lr


def test_no_method_chosen_is_explained():
    at = page()
    at.button_group(key=pg.param("methods")).set_value([])
    rerun(at)
    assert any("Choose at least one method" in i.value for i in at.info)
    assert paths(spec(at)) == {} and "sliders" not in spec(at)["layout"]


def test_the_share_box_and_the_script_are_on_the_page():
    at = page(rho="0.4")
    body = "\n".join(h.proto.body for h in at.get("html"))
    assert f'id="{link.BOX_ID}"' in body and "pg_rho=0.4" in body
    assert "setInterval" in body and f".st-key-{link.CHART_KEY}" in body
    # nothing fetched from anywhere: no address, no request, no import
    assert not re.search(r"://|fetch\(|XMLHttpRequest|import|src=", link.link_script())


# ---------------------------------------------------------------------------------------------
# the grid: every radius's sentences, table and frames come from its own trajectories
# ---------------------------------------------------------------------------------------------


def _figure(surface: toy.Surface, settings: toy.Settings, methods=toy.METHODS, rho_i=0,
            step=None) -> tuple[list[pg.GridPoint], dict[str, Any]]:
    grid = pg.precompute(surface, settings, list(methods))
    pos = pg.ChartPosition(rho_i, settings.steps if step is None else step)
    return grid, chart.playground_figure(surface, grid, pos, settings.steps,
                                         settings.start).to_dict()


def _frame(fig: dict[str, Any], name: str) -> dict[int, dict[str, Any]]:
    """Trace index -> what frame ``name`` sets on it."""
    frame = next(f for f in fig["frames"] if f["name"] == name)
    return dict(zip(frame["traces"], frame["data"], strict=True))


@pytest.mark.parametrize("surface", list(toy.SURFACES.values()), ids=lambda s: s.key)
def test_every_grid_point_shows_the_sentences_of_its_own_trajectories(surface):
    """Item 3: for each ρ of the slider, the sentences and the table the chart shows (set by
    that ρ's frame) are those computed from a run with that ρ alone, and its paths end where
    those runs end."""
    settings = replace(surface.suggested, lr=0.3, steps=60)  # ASAM diverges on 'rescaling'
    grid, fig = _figure(surface, settings)
    steps = sliders(fig)["rho"]["steps"]
    assert [float(s["value"]) for s in steps] == list(pg.RHO_GRID)
    text_i, cells_i = named(fig, "what happened")[0], named(fig, "end points")[0]
    seen, diverged = set(), 0
    for j, rho in enumerate(pg.RHO_GRID):
        assert steps[j]["args"][0] == [f"r{j}"]
        frame = _frame(fig, f"r{j}")
        alone = toy.run_methods(surface, replace(settings, rho=rho))
        oc = toy.outcomes(surface, alone, rho)
        expected = pg.outcome_sentences(surface, oc)
        shown = chart.plotly_to_text(frame[text_i]["text"][0])
        assert " ".join(shown.split()) == " ".join(
            [f"With ρ = {rho:.2f}:"] + [f"• {plain(s)}" for s in expected])
        rows = pg.outcome_rows(oc)
        cells = frame[cells_i]["text"]
        width = len(cells) // (len(rows) + 1)
        body = [cells[width * (r + 1): width * (r + 2)] for r in range(len(rows))]
        assert [b[0] for b in body] == [r["method"] for r in rows]
        columns = [chart.plotly_to_text(h).replace(" ", "") for h in cells[:width]]
        for b, r in zip(body, rows, strict=True):
            assert b == chart.row_cells(r, [c for c in chart._columns(grid)])
            assert [c.replace(" ", "") for c in chart._columns(grid)] == columns
            if not r.get("diverged"):  # 4 significant digits of the same numbers
                assert float(b[1]) == pytest.approx(r["end w"], rel=5e-4, abs=1e-9)
                assert float(b[3]) == pytest.approx(r["loss"], rel=5e-4, abs=1e-9)
            else:
                assert b[1:-1] == ["—"] * (width - 2) and b[-1] == "yes"
                diverged += 1
        ends = {fig["data"][i]["name"]: (d["x"][-1], d["y"][-1]) for i, d in frame.items()
                if fig["data"][i].get("mode") == "lines" and "xaxis" not in fig["data"][i]}
        for key, t in alone.items():
            np.testing.assert_allclose(ends[pg.LABELS[key]], t.end, atol=6e-5)
        seen.add(tuple(expected))
    assert len(seen) > 3  # the sentences do change along the grid
    assert (diverged > 0) == (surface.key == "rescaling")


def test_the_sentences_and_the_outcomes_agree_in_sign_and_rounding():
    """The sentences name the methods whose numbers are smallest / largest, with the numbers
    the table shows (rounded the same way)."""
    surface = toy.rescaling
    grid, _ = _figure(surface, surface.suggested)
    checked = 0
    for point in grid:
        for line in point.sentences:
            m = re.match(r"Smallest γ at the end: \*\*(.+?)\*\* \(([-\d.]+)\); largest: "
                         r"\*\*(.+?)\*\* \(([-\d.]+)\)\.", line)
            if not m:
                continue
            gammas = {pg.LABELS[k]: o.end[1] for k, o in point.outcomes.items()}
            lo, hi = min(gammas.values()), max(gammas.values())
            assert float(m[2]) == round(lo, 2) < float(m[4]) == round(hi, 2)
            for name in m[1].replace(" and ", ", ").split(", "):
                assert np.isclose(gammas[name], lo, rtol=0.02, atol=1e-3)
            for name in m[3].replace(" and ", ", ").split(", "):
                assert np.isclose(gammas[name], hi, rtol=0.02, atol=1e-3)
            checked += 1
    assert checked > 10


def test_frames_draw_w_and_its_ascent_point_for_every_radius():
    """A step frame moves the (w_k, w_k + eps_k) pair of every radius; a ρ frame selects
    radius j's pair: together they show radius j at step k, whichever moved last."""
    s = toy.minima.suggested
    methods = ["gd", "sam", "samon"]
    grid, fig = _figure(toy.minima, s, methods, rho_i=3, step=7)
    pairs = [i for i, t in enumerate(fig["data"]) if str(t.get("name")).endswith("step shown")]
    assert len(pairs) == 3 and sum(f["group"] == "step" for f in fig["frames"]) == s.steps + 1
    for i in pairs:
        assert fig["data"][i]["selectedpoints"] == [6, 7]  # radius 3 at the start
    for k in (0, 7, s.steps):
        frame = _frame(fig, str(k))
        for i, key in zip(pairs, methods, strict=True):
            for j in (0, 3, 20):
                t = grid[j].trajs[key]
                np.testing.assert_allclose(frame[i]["x"][2 * j: 2 * j + 2],
                                           [t.points[k, 0], t.ascent[k, 0]], atol=6e-5)
                np.testing.assert_allclose(frame[i]["y"][2 * j: 2 * j + 2],
                                           [t.points[k, 1], t.ascent[k, 1]], atol=6e-5)
    for j in (0, 20):
        frame = _frame(fig, f"r{j}")
        assert all(frame[i] == {"selectedpoints": [2 * j, 2 * j + 1]} for i in pairs)
    step = _frame(fig, "7")  # a step keeps the text of the radius shown (it only rides along)
    assert step[named(fig, "what happened")[0]] == {} == step[named(fig, "end points")[0]]
    samon = grid[3].trajs["samon"]
    assert np.allclose(samon.points[:, 0], samon.ascent[:, 0])  # SAM-ON moves gamma only
    assert sliders(fig)["step"]["active"] == 7 and sliders(fig)["rho"]["active"] == 3


def test_a_run_that_diverged_stays_at_its_last_point():
    s = replace(toy.rescaling.suggested, lr=0.3, steps=60)  # ASAM diverges at rho 1
    grid, fig = _figure(toy.rescaling, s, ["sam", "asam"], rho_i=20)
    asam = grid[20].trajs["asam"]
    assert asam.diverged_at is not None
    i = named(fig, "ASAM at the step shown")[0]
    last = _frame(fig, str(s.steps))[i]
    np.testing.assert_allclose(last["x"][40], asam.end[0], atol=6e-5)
    dots = named(fig, "ASAM")  # the path; its loss dots are the trace after the pairs
    loss_dots = _frame(fig, str(s.steps))[i + 1]
    assert loss_dots["y"][20] is None and loss_dots["x0"] == s.steps  # no loss after it
    assert dots[1]["x"][-1] == pytest.approx(asam.end[0], abs=6e-5)
    assert "ASAM** diverged" in " ".join(grid[20].sentences)
    # the loss axis of that radius fits the runs that did not diverge (not ASAM's blow-up)
    lo, hi = next(f for f in fig["frames"] if f["name"] == "r20")["layout"]["yaxis2"]["range"]
    sam = grid[20].trajs["sam"].loss
    assert lo <= sam.min() and sam.max() <= hi < 10 * max(sam.max(), 1.0)
    assert np.nanmax(np.abs(asam.loss)) > 100 * hi


@pytest.mark.parametrize("surface", list(toy.SURFACES.values()), ids=lambda s: s.key)
def test_figures_are_valid_plotly(surface):
    _, fig = _figure(surface, replace(surface.suggested, steps=20))
    go.Figure(fig)  # plotly's validation of data, layout and frames: raises if invalid
    _, fig = _figure(surface, replace(surface.suggested, steps=5), methods=[])
    go.Figure(fig)


def test_wrapping_keeps_the_words_and_balances_bold():
    text = ("With these settings **GD** ends in the **sharp minimum**'s bowl; **SAM, ASAM and "
            "SAM-ON** end in the **flat minimum**'s bowl & more.")
    wrapped = chart.wrap(chart.md_to_plotly(text), 20)
    assert chart.plotly_to_text(wrapped) == plain(text)
    for line in wrapped.split("<br>"):
        assert len(chart.plotly_to_text(line)) <= 20 or " " not in chart.plotly_to_text(line)
        assert line.count("<b>") == line.count("</b>")
    assert "&amp;" in wrapped and "<b>SAM,</b><br><b>ASAM and SAM-ON</b>" in wrapped


def test_url_notes_only_for_values_that_are_not_used_as_given():
    p = pg.param
    good = {p("rho"): ["0.5"], p("steps"): ["12"], p("surface"): ["Valley"],
            p("methods"): ["GD", "SAM"], p("step"): ["0"]}
    assert pg.url_notes(good, toy.valley) == []
    bad = {p("rho"): ["1.5"], p("lr"): ["0.1", "0.2"], p("y0"): ["inf"], p("step"): ["2.5"]}
    notes = pg.url_notes(bad, toy.valley)
    assert len(notes) == 4
    assert any("from 0.00 to 1.00" in n and "using 0.40" in n for n in notes)  # valley's rho
    assert any("more than once" in n for n in notes)
    assert any("pg_step=2.5` is not a whole number: using the end" in n for n in notes)
    pos = pg.chart_position(bad, toy.valley, 30)
    assert pos.rho == toy.valley.suggested.rho and pos.step == 30


def test_rho_index_is_the_nearest_grid_point():
    assert [pg.RHO_GRID[pg.rho_index(r)] for r in (0.0, 0.024, 0.025, 0.33, 1.0)] == [
        0.0, 0.0, 0.05, 0.35, 1.0]
    for key in ("minima", "valley", "rescaling"):  # every surface's default is on the grid
        rho = toy.get_surface(key).suggested.rho
        assert pg.RHO_GRID[pg.rho_index(rho)] == rho


def _outcome(method: str, basin: str | None, sharpness: float, gamma: float = 0.5,
             diverged: bool = False) -> toy.Outcome:
    return toy.Outcome(method, (0.0, gamma), 0.1, sharpness, 1.0, 0.2, basin, diverged)


def test_outcome_sentences_follow_the_numbers():
    oc = {"gd": _outcome("gd", "flat", 2.0), "sam": _outcome("sam", "sharp", 15.0),
          "samon": _outcome("samon", None, 1.0, diverged=True)}
    lines = pg.outcome_sentences(toy.minima, oc)
    assert lines[0].startswith("**SAM-ON** diverged")
    assert ("With these settings SAM ends in the **sharp minimum**'s bowl; GD ends in the "
            "**flat minimum**'s bowl.") in lines  # the diverged SAM-ON is in neither
    assert any("Smallest sharpness λ_max at the end: **GD** (2.00); largest: **SAM** (15.00)"
               in line for line in lines)
    oc = {"gd": _outcome("gd", None, 3.0, gamma=0.4), "samon": _outcome("samon", None, 3.0, 1.3)}
    lines = pg.outcome_sentences(toy.rescaling, oc)
    assert "Smallest γ at the end: **GD** (0.40); largest: **SAM-ON** (1.30)." in lines
    assert not any("sharpness" in line for line in lines)  # equal: no comparison made up


def test_landscape_picture_is_a_png_of_the_surface():
    z = np.add.outer(np.linspace(0, 1, 5), np.linspace(0, 2, 7))  # (5, 7), min 0 at [0, 0]
    rgb = land.landscape_rgb(z, zmax=2.0)
    png = land._png(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    idat = png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(5, 1 + 7 * 3)
    np.testing.assert_array_equal(raw[:, 1:].reshape(5, 7, 3), rgb)
    assert tuple(rgb[0, 0]) == tuple(land._colour(np.array([0.5 / land.BANDS]))[0])  # low loss
    assert tuple(rgb[-1, -1]) == tuple(land._colour(np.array([1.0 - 0.5 / land.BANDS]))[0])


@pytest.mark.parametrize("lr", [0.03, 0.1])
def test_the_bounce_the_text_states_is_what_sam_does(lr):
    """The teaching text says SAM ends up bouncing lr λ ρ / (2 - lr λ) from the bottom of a
    quadratic bowl, stated as a multiple of ρ: run toy's SAM on one and measure it."""
    lam = 12.0
    factor = pg.bounce_factor(lr, lam)
    for rho in (0.1, 0.3):
        bowl = toy.quadratic(np.diag([lam, 1.0]))
        end = toy.trajectory(bowl, "sam", toy.Settings((0.5, 0.0), lr, rho, 400)).points[-2:, 0]
        np.testing.assert_allclose(np.abs(end), factor * rho, rtol=1e-6)
    assert f"SAM bounces {factor:.2f}·ρ from the bottom" == pg._bounce(lr, lam)
    assert "even GD's steps grow" in pg._bounce(0.2, lam)  # lr λ = 2.4
