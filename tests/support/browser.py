"""Headless Chromium driven by Selenium, and the Streamlit server it looks at: one helper for the
browser test (tests/browser/test_browser_e2e.py) and the latency bench (bench/app_latency.py).

Uses Debian's ``chromium`` and ``chromedriver`` (``apt-get install chromium chromium-driver``).
``unavailable()`` says why no browser can be driven here (then the test skips and the bench
stops); selenium is imported only when a driver is made, so importing this module never fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)

# JavaScript: number of points of the longest trace of the plotly chart whose Streamlit key is
# given (Streamlit puts ``st-key-<key>`` on the element's container); -1 while it is missing.
POINTS_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return -1; }
let n = 0;
for (const t of el.data) { if (t.x && t.x.length > n) { n = t.x.length; } }
return n;
"""

# Names of the traces (legend entries) of a plotly chart that have at least one point.
TRACES_WITH_POINTS_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return []; }
return el.data.filter(t => t.x && t.x.length > 0).map(t => t.name);
"""

T = TypeVar("T")


def unavailable() -> str | None:
    """Why no headless browser can be driven here; None when one can."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return ("headless Chromium is not installed (apt-get install chromium chromium-driver); "
                f"looked for {CHROMIUM} and {CHROMEDRIVER}")
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed"
    return None


def new_driver(prefix: str = "samon-chrome-") -> Any:
    """A headless Chrome WebDriver with a fresh profile directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix=prefix)}")
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def chart_points(driver: Any, key: str) -> int:
    """Points of the longest trace of the plotly chart with Streamlit key ``key`` (-1: none)."""
    return driver.execute_script(POINTS_JS, key)


def traces_with_points(driver: Any, key: str) -> list[str]:
    """Names of the traces of the plotly chart with Streamlit key ``key`` that have points."""
    return list(driver.execute_script(TRACES_WITH_POINTS_JS, key) or [])


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2,
               what: str = "") -> T:
    """The first truthy value of ``predicate()`` (exceptions count as not yet), polled every
    ``interval`` seconds; ``TimeoutError`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            last = predicate()
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or 'a condition'} "
                       f"(last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(runs_dir: Path, port: int, log_path: Path, *, cwd: Path,
              **env_changes: str) -> subprocess.Popen:
    """``streamlit run app.py`` on 127.0.0.1:``port`` with the run store ``runs_dir``, in its own
    process group (so that ``stop_app`` stops its workers too). ``env_changes`` are set in its
    environment (``SAMON_START_WORKERS`` is "0" unless given); the developer's
    ``SAMON_SETTINGS`` is removed."""
    env = dict(os.environ)
    env.update({"SAMON_RUNS_DIR": str(runs_dir), "SAMON_START_WORKERS": "0",
                "PYTHONUNBUFFERED": "1", **env_changes})
    env.pop("SAMON_SETTINGS", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0,
                 interval: float = 0.05) -> None:
    """Wait until the server's health endpoint answers (``TimeoutError``; an ``AssertionError``
    right away when the server has exited)."""

    def ok() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200

    end = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"streamlit exited with code {proc.returncode}"
        with contextlib.suppress(Exception):
            if ok():
                return
        if time.monotonic() > end:
            raise TimeoutError(f"the streamlit server did not answer within {timeout:.0f} s")
        time.sleep(interval)


def stop_app(proc: subprocess.Popen, timeout: float = 40.0) -> None:
    """SIGTERM to the app's process group (its atexit stops the worker pool), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def screenshot(driver: Any, path: Path) -> Path:
    """A full-page screenshot at ``path`` (the window grown to the page's height, at most
    4000 px, then set back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=stMain]');"
        "return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight);"
    )
    driver.set_window_size(1400, max(1000, min(int(height) + 60, 4000)))
    time.sleep(1.0)
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


# ---------------------------------------------------------------------------------------------
# plotly's own sliders, and proof that a move stays in the browser
# ---------------------------------------------------------------------------------------------

# Counts the messages the page sends over its websocket (a Streamlit rerun is one): installed
# before any page script runs, for every page the driver opens (``count_websocket_sends``).
WS_COUNTER_JS = """
(() => {
  const send = WebSocket.prototype.send;
  window.__samonWsSent = 0;
  WebSocket.prototype.send = function (...args) {
    window.__samonWsSent += 1;
    return send.apply(this, args);
  };
})();
"""

# The chart's sliders: [{name, active, value}] for the plotly chart with Streamlit key
# arguments[0] (empty while the chart is missing).
SLIDERS_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
if (!el || !el.layout || !el.layout.sliders) { return []; }
return el.layout.sliders.map(s => ({name: s.name, active: s.active || 0,
                                   value: s.steps[s.active || 0].value}));
"""

# Where to click on step arguments[2] of the slider named arguments[1] of the chart with key
# arguments[0]: the middle of its tick, scrolled into view (viewport coordinates).
SLIDER_TICK_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
const group = [...el.querySelectorAll('g.slider-group')]
  .find(g => g.__data__ && g.__data__.name === arguments[1]);
group.scrollIntoView({block: 'center'});
const tick = group.querySelectorAll('rect.slider-tick-rect')[arguments[2]].getBoundingClientRect();
const rail = group.querySelector('rect.slider-rail-touch-rect').getBoundingClientRect();
return [tick.x + tick.width / 2, rail.y + rail.height / 2];
"""

# Times a move of the chart's sliders in the page: from the mousedown (the event's own time
# stamp) to the first frame painted after plotly has finished the animation the move started
# ('plotly_animated'; a requestAnimationFrame callback, then a task: the frame is on screen).
# Installed once per chart element; ``window.__samonMove`` = {t0, t1} of the last move.
MOVE_TIMER_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
window.__samonMove = {t0: null, t1: null};
if (!window.__samonMouse) {
  window.__samonMouse = true;
  window.addEventListener('mousedown', e => {
    window.__samonMove = {t0: e.timeStamp, t1: null};
  }, true);
}
if (!el.__samonTimed) {
  el.__samonTimed = true;
  el.on('plotly_animated', () => requestAnimationFrame(() => setTimeout(() => {
    const m = window.__samonMove;
    if (m.t0 !== null && m.t1 === null) { m.t1 = performance.now(); }
  }, 0)));
}
return true;
"""


def count_websocket_sends(driver: Any) -> None:
    """From the next page load on, count what the page sends over its websocket."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WS_COUNTER_JS})


def websocket_sends(driver: Any) -> int:
    """Messages sent over the websocket since the page loaded (``count_websocket_sends``)."""
    return int(driver.execute_script("return window.__samonWsSent || 0"))


def plotly_sliders(driver: Any, key: str) -> dict[str, dict[str, Any]]:
    """Name -> {active, value} of the sliders of the plotly chart with Streamlit key ``key``."""
    return {s["name"]: s for s in driver.execute_script(SLIDERS_JS, key) or []}


def click_plotly_slider(driver: Any, key: str, name: str, index: int) -> None:
    """A real mouse click (press and release, through the DevTools protocol) on step ``index``
    of the slider named ``name`` of the plotly chart with Streamlit key ``key``."""
    x, y = driver.execute_script(SLIDER_TICK_JS, key, name, index)
    for kind in ("mousePressed", "mouseReleased"):
        driver.execute_cdp_cmd("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})


def time_slider_move(driver: Any, key: str, name: str, index: int,
                     timeout: float = 10.0) -> float:
    """Milliseconds from the mousedown on step ``index`` of the slider ``name`` to the first
    frame painted after the chart's animation (``MOVE_TIMER_JS``)."""
    driver.execute_script(MOVE_TIMER_JS, key)
    click_plotly_slider(driver, key, name, index)
    move = wait_until(lambda: driver.execute_script(
        "const m = window.__samonMove; return m.t1 !== null && m"), timeout, 0.01,
        f"the chart to repaint after moving {name!r}")
    return float(move["t1"] - move["t0"])
