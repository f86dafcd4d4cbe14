"""End to end in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``, Selenium).

Starts ``streamlit run app.py`` on a free port with a fresh run store and real local workers,
clicks the quick demo on Home (the trainer runs on the synthetic dataset), watches the accuracy
chart of the Live page gain points (two epoch records), takes screenshots, then cancels the runs
and stops the app and its workers. Skipped, saying why, when chromium or chromedriver is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("SAMON_SHOTS_DIR", "/tmp/samon_shots"))
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        "headless Chromium is not installed (apt-get install chromium chromium-driver); "
        f"looked for {CHROMIUM} and {CHROMEDRIVER}",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")


# JavaScript: number of points of the longest trace of the plotly chart whose Streamlit key is
# given (Streamlit puts ``st-key-<key>`` on the element's container); -1 while it is missing.
POINTS_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return -1; }
let n = 0;
for (const t of el.data) { if (t.x && t.x.length > n) { n = t.x.length; } }
return n;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = ""):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            last = predicate()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def start_app(runs_dir: Path, port: int, log_path: Path, *, workers: bool) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        SAMON_RUNS_DIR=str(runs_dir),
        SAMON_START_WORKERS="1" if workers else "0",
        SAMON_WORKER_DEVICES="cpu",
        SAMON_HEARTBEAT_EVERY_S="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("SAMON_SETTINGS", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    return subprocess.Popen(cmd, cwd=runs_dir.parent, env=env, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    def ok():
        assert proc.poll() is None, "streamlit exited"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200

    wait_until(ok, timeout, 0.2, "the streamlit server")


def stop_app(proc: subprocess.Popen) -> None:
    """SIGTERM to the app's process group (its atexit stops the worker pool), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def new_driver():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='samon-chrome-')}")
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def screenshot(driver, name: str) -> Path:
    """A full-page screenshot (the window grown to the page's height, at most 4000 px)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=stMain]');"
        "return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight);"
    )
    driver.set_window_size(1400, max(1000, min(int(height) + 60, 4000)))
    time.sleep(1.0)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def kill_workers(runs_dir: Path) -> None:
    """Stop worker processes of this store that survived the app (by pid, from their records)."""
    from samon_core.service import jobs
    from samon_core.runs.store import RunStore

    store = RunStore(runs_dir)
    for rec in jobs.read_worker_records(store):
        pid = rec.get("pid")
        if isinstance(pid, int) and jobs.pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)


# The quick demo as the Launch form has it by default (tiny ResNet, synthetic data, SGD vs
# SAM-all vs SAM-ON), shrunk through the URL (the form is bound to it) so that CI sees two epochs
# within a minute or so even on a busy 2-core machine.
TINY_DEMO_QUERY = "epochs=3&train_subset=512&test_subset=256&sharpness_samples=128&owner=e2e"


def test_quick_demo_trains_and_live_chart_gains_points(tmp_path):
    from selenium.webdriver.common.by import By

    from samon_core.service import jobs
    from samon_core.runs.store import RunStore

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    port = free_port()
    log = tmp_path / "streamlit.log"
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    proc = start_app(runs_dir, port, log, workers=True)
    driver = None
    store = RunStore(runs_dir)

    def button(text: str):
        return next(b for b in driver.find_elements(By.TAG_NAME, "button")
                    if text in b.text.lower() and b.is_enabled())

    try:
        wait_healthy(port, proc)
        driver = new_driver()
        driver.get(f"{base}/?owner=e2e")
        wait_until(lambda: button("quick demo"), 60, what="the quick-demo button on Home")
        print(f"app ready in the browser {time.monotonic() - t0:.1f} s after `streamlit run`")
        assert "SAM-ON Lab" in driver.title or "SAM-ON Lab" in driver.page_source
        screenshot(driver, "home")

        # the quick demo, shrunk through the URL-bound form
        driver.get(f"{base}/launch?{TINY_DEMO_QUERY}")
        launch = wait_until(lambda: button("launch 3 runs"), 60, what="the launch button")
        epochs = driver.find_element(By.CSS_SELECTOR, ".st-key-epochs input")
        assert epochs.get_attribute("value") == "3"
        launch.click()
        t_launch = time.monotonic()
        wait_until(lambda: "/live" in driver.current_url, 30, what="the Live page")
        print("Live page URL:", driver.current_url)
        wait_until(lambda: len(store.list_runs()) == 3, 30, what="three queued runs")
        runs = store.list_runs()
        assert set(runs["owner"]) == {"e2e"}, runs[["owner", "run_id"]]
        assert set(runs["dataset"]) == {"synthetic"} and set(runs["epochs"]) == {3}
        assert sorted(runs["method_label"]) == ["SAM-ON", "SAM-all", "SGD"]

        wait_until(lambda: driver.execute_script(POINTS_JS, "live_acc_chart") >= 1,
                   110, 0.25, "the first epoch point on the accuracy chart")
        t_first = time.monotonic()
        wait_until(lambda: driver.execute_script(POINTS_JS, "live_acc_chart") >= 2,
                   60, 0.25, "a second epoch point on the accuracy chart")
        t_second = time.monotonic()
        print(f"first epoch point {t_first - t_launch:.1f} s after launching, the second "
              f"{t_second - t_first:.1f} s later")
        main = driver.find_element(By.CSS_SELECTOR, "[data-testid=stMain]").text
        assert "SGD" in main and "SAM-ON" in main and "Synthetic data" in main
        screenshot(driver, "e2e_live")
        for tab in driver.find_elements(By.CSS_SELECTOR, "[role=tab]"):
            if "distribution" in tab.text:
                tab.click()
                wait_until(lambda: driver.execute_script(POINTS_JS, "live_gamma_anim") > 0, 30,
                           what="the gamma histogram")
                screenshot(driver, "e2e_live_gamma")

        # the other pages render in the browser too (a screenshot of each)
        for path, key in (("launch", "launch_preset"), ("compare", "compare_table")):
            driver.get(f"{base}/{path}?owner=e2e")
            wait_until(lambda key=key: driver.find_elements(By.CSS_SELECTOR, f".st-key-{key}"),
                       60, what=f"the {path} page")
            time.sleep(1.5)
            screenshot(driver, f"e2e_{path}")
    finally:
        try:
            for run_id in store.list_runs()["run_id"] if store.root.exists() else []:
                with contextlib.suppress(Exception):
                    jobs.cancel(run_id, store=store)
            if driver is not None:
                driver.quit()
        finally:
            stop_app(proc)
            kill_workers(runs_dir)
