"""Server-side time of one Playground interaction: compute + figures + serialisation. Measured,
not asserted (target: under ~200 ms per move of a server-side control). Moves of the chart's own
sliders (rho, step) cost no server time at all: ``bench/browser_latency.py`` times them.

For each of N pseudo-random slider settings (surface, methods, rho, lr, start, steps, step shown)
it times what the page does on a rerun, in three parts:

1. compute:   ``samon_core.toy`` trajectories of the chosen methods for the whole rho grid, their
              outcomes, sentences and table rows (``samon_app.playground.precompute``);
2. figures:   the figure with every radius's traces and one animation frame per step
              (``samon_app.charts.playground``);
3. serialise: ``plotly.io.to_json(fig.to_dict())``, which is what ``st.plotly_chart`` sends to
              the browser.

The landscape picture (a PNG per surface) is built once per surface and cached for all sessions:
its first build is reported apart (``cold``). With ``--apptest K`` it also times K full reruns of
the page script through ``streamlit.testing`` (a slider moved each time): Streamlit's own work
plus the test harness, still without a browser.

Usage: python bench/playground_latency.py [--settings 20] [--seed 0] [--apptest 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import plotly  # noqa: E402
import plotly.io as pio  # noqa: E402
import streamlit  # noqa: E402

from samon_app import playground as pg  # noqa: E402  (the page's builders)
from samon_app.charts.playground import playground_figure  # noqa: E402
from samon_app.charts.playground_landscape import landscape_uri  # noqa: E402
from samon_core import toy  # noqa: E402
from samon_core.train.hardware import cpu_model  # noqa: E402  (no torch)


def settings_list(n: int, seed: int) -> list[tuple[toy.Surface, list[str], toy.Settings, int]]:
    """n slider settings spread over the sliders' ranges (the last one the heaviest: 200 steps,
    all methods)."""
    rng = np.random.default_rng(seed)
    surfaces = list(toy.SURFACES.values())
    out = []
    for i in range(n):
        methods = list(toy.METHODS) if rng.random() < 0.6 else sorted(
            rng.choice(toy.METHODS, size=int(rng.integers(1, 4)), replace=False).tolist())
        steps = int(rng.integers(1, pg.STEPS_MAX + 1))
        s = toy.Settings(start=(float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2))),
                         lr=float(rng.uniform(0.005, 0.3)), rho=float(rng.uniform(0, 1)),
                         steps=steps)
        out.append((surfaces[i % len(surfaces)], methods, s, int(rng.integers(0, steps + 1))))
    heavy = replace(toy.minima.suggested, steps=pg.STEPS_MAX)
    out[-1] = (toy.minima, list(toy.METHODS), heavy, pg.STEPS_MAX)
    return out


def one(surface: toy.Surface, methods: list[str], s: toy.Settings, step: int) -> dict:
    t0 = time.perf_counter()
    grid = pg.precompute(surface, s, methods)
    t1 = time.perf_counter()
    position = pg.ChartPosition(pg.rho_index(s.rho), min(step, s.steps))
    fig = playground_figure(surface, grid, position, s.steps, s.start)
    t2 = time.perf_counter()
    spec = pio.to_json(fig.to_dict(), validate=False)
    t3 = time.perf_counter()
    return {"compute": t1 - t0, "figures": t2 - t1, "serialise": t3 - t2, "total": t3 - t0,
            "kb": len(spec) / 1024, "steps": s.steps, "methods": len(methods)}


def apptest_reruns(k: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app_pages" / "playground.py"), default_timeout=60)
    at.run()
    times = []
    for i in range(k):
        at.slider(key=pg.param("lr")).set_value(round(0.05 + 0.2 * i / max(k - 1, 1), 3))
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, [e.message for e in at.exception]
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--apptest", type=int, default=0, help="also time K full page reruns")
    args = ap.parse_args()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; Python "
          f"{platform.python_version()}, numpy {np.__version__}, plotly {plotly.__version__}, "
          f"streamlit {streamlit.__version__}")
    for surface in toy.SURFACES.values():
        t0 = time.perf_counter()
        landscape_uri(surface.key)
        print(f"cold: landscape picture of {surface.key!r}: "
              f"{1000 * (time.perf_counter() - t0):.1f} ms (once per surface per server)")

    rows = [one(*c) for c in settings_list(args.settings, args.seed)]
    print(f"\n{len(rows)} slider settings (seed {args.seed}), ms:")
    print(f"{'part':<10} {'median':>8} {'p90':>8} {'max':>8}")
    for part in ("compute", "figures", "serialise", "total"):
        ms = sorted(1000 * r[part] for r in rows)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        print(f"{part:<10} {statistics.median(ms):8.1f} {p90:8.1f} {ms[-1]:8.1f}")
    heavy = rows[-1]
    print(f"heaviest (200 steps, 4 methods): {1000 * heavy['total']:.1f} ms, "
          f"figure JSON {heavy['kb']:.0f} KB; median JSON "
          f"{statistics.median(r['kb'] for r in rows):.0f} KB")
    if args.apptest:
        ms = [1000 * t for t in apptest_reruns(args.apptest)]
        print(f"full page rerun via streamlit.testing ({len(ms)} slider moves): median "
              f"{statistics.median(ms):.0f} ms, max {max(ms):.0f} ms")


if __name__ == "__main__":
    main()
