"""The Playground page (``app_pages/playground.py``) with ``streamlit.testing``'s AppTest, and its
pure figure and text builders.

The page renders; moving a slider changes the figure's data; URL parameters set the controls
and give the same picture as setting them by hand; bad URL values fall back to the defaults with
a note; the text states the outcomes the trajectories show, whatever they are.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the page imports app_pages.common
    sys.path.insert(0, str(REPO))

from samon_app import playground as pg  # noqa: E402  (the page's builders)
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
    """The contour plot's figure as sent to the browser."""
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def paths(sp: dict[str, Any]) -> dict[str, Any]:
    """Method label -> its path trace."""
    return {t["name"]: t for t in sp["data"] if t.get("name") in pg.KEYS}


def slider(at: AppTest, name: str):
    return at.slider(key=pg.param(name))


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------


def test_the_page_renders_the_default_picture():
    at = page()
    sp = spec(at)
    s = toy.minima.suggested
    assert list(paths(sp)) == ["GD", "SAM", "ASAM", "SAM-ON"]
    assert len(sp["frames"]) == s.steps + 1
    assert sp["layout"]["images"][0]["source"].startswith("data:image/png;base64,")
    assert slider(at, "rho").value == s.rho and slider(at, "steps").value == s.steps
    assert sp["layout"]["sliders"][0]["active"] == s.steps  # the step shown defaults to the end
    assert not at.warning
    oc = toy.outcomes(toy.minima, toy.run_methods(toy.minima, s), s.rho)
    assert oc["gd"].basin == "sharp" and oc["sam"].basin == "flat"
    assert ("With these settings GD ends in the **sharp minimum**'s bowl; SAM, ASAM and SAM-ON "
            "end in the **flat minimum**'s bowl.") in texts(at)


def test_moving_a_slider_changes_the_figure_and_the_text():
    at = page()
    before = paths(spec(at))
    slider(at, "rho").set_value(0.05)
    rerun(at)
    after = paths(spec(at))
    assert after["SAM"]["x"] != before["SAM"]["x"]
    assert after["GD"]["x"] == before["GD"]["x"]  # GD does not use rho
    # with a small rho SAM no longer leaves the sharp bowl, and the text says so
    assert "GD, SAM, ASAM and SAM-ON end in the **sharp minimum**'s bowl" in texts(at)


def test_url_parameters_set_the_controls_and_reproduce_the_picture():
    query = {"surface": "Valley", "methods": ["GD", "SAM-ON"], "rho": "0.55", "steps": "40",
             "step": "10", "x0": "1.5"}
    linked = page(**query)
    assert slider(linked, "rho").value == 0.55 and slider(linked, "steps").value == 40
    assert slider(linked, "x0").value == 1.5
    assert linked.button_group(key=pg.param("surface")).value == "Valley"
    sp = spec(linked)
    assert list(paths(sp)) == ["GD", "SAM-ON"] and len(sp["frames"]) == 41
    assert sp["layout"]["sliders"][0]["active"] == 10
    # the same settings made by hand give the same figure (the link reproduces the picture)
    by_hand = page()
    by_hand.button_group(key=pg.param("surface")).set_value("Valley")
    rerun(by_hand)
    by_hand.button_group(key=pg.param("methods")).set_value(["GD", "SAM-ON"])
    for name, value in (("rho", 0.55), ("steps", 40), ("step", 10), ("x0", 1.5)):
        slider(by_hand, name).set_value(value)
    rerun(by_hand)
    assert spec(by_hand) == sp
    # ... and every control tells the browser to keep its value in the URL
    for name in pg.KNOBS:
        assert slider(linked, name).proto.query_param_key == pg.param(name)


def test_bad_url_values_fall_back_to_the_defaults_with_a_note():
    at = page(rho="abc", steps="9999", x0="nan", step="-3", surface="Nope",
              methods=["GD", "XYZ"])
    s = toy.minima.suggested
    assert slider(at, "rho").value == s.rho and slider(at, "steps").value == s.steps
    assert slider(at, "x0").value == s.start[0] and slider(at, "step").value == pg.STEPS_MAX
    notes = "\n".join(w.value for w in at.warning)
    for bad in ("pg_rho=abc", "pg_steps=9999", "pg_x0=nan", "pg_step=-3", "pg_surface=Nope",
                "`XYZ`"):
        assert bad in notes
    assert "using 0.30" in notes and "using 80" in notes
    assert list(paths(spec(at))) == ["GD"]  # the valid part of the link is kept


def test_switching_the_surface_loads_its_settings():
    at = page()
    slider(at, "rho").set_value(0.9)
    rerun(at)
    at.button_group(key=pg.param("surface")).set_value("Rescaling")
    rerun(at)
    s = toy.rescaling.suggested
    assert slider(at, "rho").value == s.rho and slider(at, "steps").value == s.steps
    assert spec(at)["layout"]["xaxis"]["range"] == list(toy.rescaling.bounds[:2])
    assert "Smallest γ at the end: **GD**" in texts(at) and "largest: **SAM-ON**" in texts(at)
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
    assert paths(spec(at)) == {}


# ---------------------------------------------------------------------------------------------
# the pure builders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", list(toy.SURFACES.values()), ids=lambda s: s.key)
def test_figures_are_valid_plotly(surface):
    trajs = toy.run_methods(surface, surface.suggested)
    fig = pg.build_figure(surface, trajs, 5, surface.suggested.start)
    go.Figure(fig.to_dict())  # plotly's validation of data, layout and frames: raises if invalid
    go.Figure(pg.loss_figure(trajs, 5).to_dict())


def test_frames_draw_w_and_its_ascent_point():
    s = toy.minima.suggested
    trajs = toy.run_methods(toy.minima, s, ["sam", "samon"])
    frames = pg.build_figure(toy.minima, trajs, 0, s.start).to_dict()["frames"]
    assert len(frames) == s.steps + 1
    for k in (0, 7, s.steps):
        for trace, t in zip(frames[k]["data"], trajs.values(), strict=True):
            np.testing.assert_allclose(trace["x"], [t.points[k, 0], t.ascent[k, 0]])
            np.testing.assert_allclose(trace["y"], [t.points[k, 1], t.ascent[k, 1]])
    samon = trajs["samon"]
    assert np.allclose(samon.points[:, 0], samon.ascent[:, 0])  # SAM-ON moves gamma only


def test_url_notes_only_for_values_the_widgets_reject():
    p = pg.param
    good = {p("rho"): ["0.5"], p("steps"): ["12"], p("surface"): ["Valley"],
            p("methods"): ["GD", "SAM"], p("step"): ["0"]}
    assert pg.url_notes(good, toy.valley) == []
    bad = {p("rho"): ["1.5"], p("lr"): ["0.1", "0.2"], p("y0"): ["inf"]}
    notes = pg.url_notes(bad, toy.valley)
    assert len(notes) == 3
    assert "from 0.00 to 1.00" in notes[0] and "using 0.40" in notes[0]  # valley's rho
    assert "more than once" in notes[1]


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
    rgb = pg.landscape_rgb(z, zmax=2.0)
    png = pg._png(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    idat = png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(5, 1 + 7 * 3)
    np.testing.assert_array_equal(raw[:, 1:].reshape(5, 7, 3), rgb)
    assert tuple(rgb[0, 0]) == tuple(pg._colour(np.array([0.5 / pg.BANDS]))[0])  # low loss
    assert tuple(rgb[-1, -1]) == tuple(pg._colour(np.array([1.0 - 0.5 / pg.BANDS]))[0])


@pytest.mark.parametrize("lr", [0.03, 0.1])
def test_the_bounce_the_text_states_is_what_sam_does(lr):
    """The teaching text says SAM ends up bouncing lr λ ρ / (2 - lr λ) from the bottom of a
    quadratic bowl: run toy's SAM on one and measure it."""
    lam, rho = 12.0, 0.2
    bowl = toy.quadratic(np.diag([lam, 1.0]))
    end = toy.trajectory(bowl, "sam", toy.Settings((0.5, 0.0), lr, rho, 400)).points[-2:, 0]
    q = lr * lam
    np.testing.assert_allclose(np.abs(end), q * rho / (2 - q), rtol=1e-6)
    assert f"SAM bounces {q * rho / (2 - q):.2f} from the bottom" == pg._bounce(lr, lam, rho)
    assert "even GD's steps grow" in pg._bounce(0.2, lam, rho)  # lr λ = 2.4
