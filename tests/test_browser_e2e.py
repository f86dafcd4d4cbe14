"""End to end in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``, Selenium).

Starts ``streamlit run app.py`` on a free port with a fresh run store and real local workers,
clicks the quick demo on Home (the trainer runs on the synthetic dataset), watches the accuracy
chart of the Live page gain points (two epoch records), waits for the runs to finish and the
verdict card to close the page, takes screenshots, then cancels what is left and stops the app
and its workers. Skipped, saying why, when chromium, chromedriver or selenium
is missing (``support.browser`` drives the browser and the server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from support import browser
from support.browser import chart_points, wait_until

SHOTS = Path(os.environ.get("SAMON_SHOTS_DIR", "/tmp/samon_shots"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if browser.unavailable():
    pytest.skip(browser.unavailable(), allow_module_level=True)


def screenshot(driver, name: str) -> Path:
    return browser.screenshot(driver, SHOTS / f"{name}.png")


def kill_workers(runs_dir: Path) -> None:
    """Stop worker processes of this store that survived the app (by pid, from their records)."""
    from samon_core import service
    from samon_core.runs.store import RunStore

    store = RunStore(runs_dir)
    for rec in service.read_worker_records(store):
        pid = rec.get("pid")
        if isinstance(pid, int) and service.pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)


# The quick demo as the Launch form has it by default (tiny ResNet, synthetic data, SGD vs
# SAM-all vs SAM-ON), shrunk through the URL (the form is bound to it) so that CI sees two epochs
# within a minute or so even on a busy 2-core machine.
TINY_DEMO_QUERY = "epochs=3&train_subset=512&test_subset=256&sharpness_samples=128&owner=e2e"


def test_quick_demo_trains_and_live_chart_gains_points(tmp_path):
    from selenium.webdriver.common.by import By

    from samon_core import service
    from samon_core.runs.store import RunStore

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    port = browser.free_port()
    log = tmp_path / "streamlit.log"
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    proc = browser.start_app(runs_dir, port, log, cwd=tmp_path, SAMON_START_WORKERS="1",
                             SAMON_WORKER_DEVICES="cpu", SAMON_HEARTBEAT_EVERY_S="1")
    driver = None
    store = RunStore(runs_dir)

    def button(text: str):
        return next(b for b in driver.find_elements(By.TAG_NAME, "button")
                    if text in b.text.lower() and b.is_enabled())

    try:
        browser.wait_healthy(port, proc)
        driver = browser.new_driver()
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

        wait_until(lambda: chart_points(driver, "live_acc_chart") >= 1,
                   110, 0.25, "the first epoch point on the accuracy chart")
        t_first = time.monotonic()
        # lockstep: the three runs train side by side, so all three curves have points soon
        # after the first one (within 30 s), not one method after the other
        wait_until(lambda: {"SGD", "SAM-all", "SAM-ON"} <= set(
            browser.traces_with_points(driver, "live_acc_chart")), 30, 0.25,
            "points on all three methods' curves")
        print(f"all three curves have points {time.monotonic() - t_first:.1f} s after the first")
        wait_until(lambda: chart_points(driver, "live_acc_chart") >= 2,
                   60, 0.25, "a second epoch point on the accuracy chart")
        t_second = time.monotonic()
        print(f"first epoch point {t_first - t_launch:.1f} s after launching, the second "
              f"{t_second - t_first:.1f} s later")
        main = driver.find_element(By.CSS_SELECTOR, "[data-testid=stMain]").text
        assert "SGD" in main and "SAM-ON" in main and "Synthetic data" in main
        assert "Your runs:" in main  # the verdict under the chart reads these runs
        screenshot(driver, "e2e_live")
        for tab in driver.find_elements(By.CSS_SELECTOR, "[role=tab]"):
            if "distribution" in tab.text:
                tab.click()
                wait_until(lambda: chart_points(driver, "live_gamma_anim") > 0, 30,
                           what="the gamma histogram")
                screenshot(driver, "e2e_live_gamma")

        # once every run has ended, the page ends on the verdict card (read from these runs)
        card = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR,
                                                       ".st-key-live_verdict_card"),
                          180, 0.5, "the verdict card after the runs finished")[0]
        print(f"verdict card {time.monotonic() - t_second:.1f} s after the second epoch point")
        assert set(store.list_runs()["state"]) == {"finished"}
        assert "What your comparison shows" in card.text and "Your 3 runs agree" in card.text
        assert "more seeds" in card.text  # the link to the Claims page
        card.location_once_scrolled_into_view  # noqa: B018 - scrolls the card into the shot
        screenshot(driver, "e2e_live_card")

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
                    service.cancel(run_id, store=store)
            if driver is not None:
                driver.quit()
        finally:
            browser.stop_app(proc)
            kill_workers(runs_dir)
