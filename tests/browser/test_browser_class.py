"""The class experiment end to end in a real headless Chromium (``support.browser``).

The teacher signs in through the sidebar, opens the Room page from the menu and starts a class
experiment (the accuracy claim at the cpu size); three students add a seed each through the
service API (``classroom.add_my_seed`` with their own keys, as their Home buttons do); the test
then plays the workers and finishes their runs with records of the trainer's shape. The Room's
class verdict counts the three seeds while the page stays open (it polls), and the projector page,
opened in a fresh browser session without any key, shows the same count and no secret. No
training: the runs are finished by hand, so it takes about a minute. Skipped, saying why, when
chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support import browser
from support.browser import wait_until
from support.records import MEANS, run_records
from support.teacher import TEACHER_TOKEN

SHOTS = Path(os.environ.get("SAMON_SHOTS_DIR", "/tmp/samon_shots"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if browser.unavailable():
    pytest.skip(browser.unavailable(), allow_module_level=True)


def finish(store, run_id: str, acc: float) -> None:
    """Do what a worker does at the end of a run: its records, 'finished', its summary."""
    config = store.read_config(run_id)
    with store.metrics_writer(run_id) as w:
        for rec in run_records(acc, config.epochs):
            w.write(rec)
    store.write_status(run_id, "finished", epoch=config.epochs)
    store.write_summary(run_id, {"state": "finished", "final_test_acc": acc / 100,
                                 "epochs_done": config.epochs})


def test_teacher_starts_a_class_experiment_and_sees_three_students_seeds(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from samon_core import service
    from samon_core.catalog.methods import method_key
    from samon_core.claims.classroom import add_my_seed
    from samon_core.runs.store import RunStore
    from samon_core.service.room import read_room
    from samon_core.service.settings import load_settings

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    store = RunStore(runs_dir)
    port = browser.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = browser.start_app(runs_dir, port, tmp_path / "streamlit.log", cwd=tmp_path,
                             SAMON_TEACHER_TOKEN=TEACHER_TOKEN)
    settings = load_settings(environ={"SAMON_RUNS_DIR": str(runs_dir),
                                      "SAMON_TEACHER_TOKEN": TEACHER_TOKEN})
    driver = None

    def main_text() -> str:
        return driver.find_element(By.CSS_SELECTOR, "[data-testid=stMain]").text

    def click(text: str) -> None:
        wait_until(lambda: next(b for b in driver.find_elements(By.TAG_NAME, "button")
                                if text in b.text and b.is_enabled()), 60,
                   what=f"the button {text!r}").click()

    def metric(label: str) -> str:
        for box in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stMetric]"):
            if label in box.text:
                return box.find_element(By.CSS_SELECTOR, "[data-testid=stMetricValue]").text
        return ""

    try:
        browser.wait_healthy(port, proc)
        driver = browser.new_driver()
        driver.get(f"{base}/")
        # the teacher signs in in the sidebar (the token typed, never in the URL)
        wait_until(lambda: next(x for x in driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=stSidebar] [data-testid=stExpander] summary")
            if "Teacher" in x.text), 60, what="the Teacher sign-in").click()
        field = wait_until(lambda: driver.find_element(By.CSS_SELECTOR, "input[type=password]"),
                           30, what="the token field")
        field.send_keys(TEACHER_TOKEN + Keys.ENTER)
        wait_until(lambda: "Signed in as teacher" in driver.find_element(
            By.CSS_SELECTOR, "[data-testid=stSidebar]").text, 60, what="the signed-in line")
        # the Room page from the menu (the same session: the sign-in holds)
        wait_until(lambda: next(a for a in driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=stSidebarNav] a") if "Room" in a.text), 30,
            what="Room in the menu").click()
        wait_until(lambda: "Start the class experiment" in main_text(), 60, what="the Room page")
        click("Start the class experiment")
        wait_until(lambda: read_room(store).experiment is not None, 30, what="the experiment")
        e = read_room(store).experiment
        assert (e.claim, e.size) == ("accuracy", "cpu")
        wait_until(lambda: "Stop the class experiment" in main_text(), 30, what="Stop")
        browser.screenshot(driver, SHOTS / "class_room_started.png")

        # three students add a seed each, with their own keys (their Home button's call)
        added = []
        for name in ("ana", "ben", "caro"):
            key = service.register_owner(name, store=store, settings=settings)
            added.append(add_my_seed(owner=name, owner_key=key, store=store, settings=settings))
        assert sorted(a.seed for a in added) == [0, 1, 2]
        wait_until(lambda: metric("Still training") == "3", 60, what="3 seeds training")
        assert metric("Seeds counted") == "0"
        # ... and the workers finish them
        for a in added:
            for rid in a.run_ids:
                finish(store, rid, MEANS[method_key(store.read_config(rid))] + a.seed)
        t0 = time.monotonic()
        wait_until(lambda: metric("Seeds counted") == "3", 60, 0.5, "3 seeds counted")
        print(f"the Room's class verdict counted the 3 seeds {time.monotonic() - t0:.1f} s "
              "after they finished")
        text = main_text()
        assert "rests on 3 seeds (0-2) from 3 students, at the cpu size" in text
        assert metric("Students") == "3"
        browser.screenshot(driver, SHOTS / "class_room_verdict.png")

        # the projector: a fresh session, no key, no sign-in
        driver.delete_all_cookies()
        driver.get(f"{base}/class")
        wait_until(lambda: metric("Seeds counted") == "3", 60, what="the projector's count")
        assert "rests on 3 seeds" in main_text()
        assert TEACHER_TOKEN not in driver.page_source
        assert "Signed in as teacher" not in driver.page_source
        browser.screenshot(driver, SHOTS / "class_projector.png")
    finally:
        if driver is not None:
            driver.quit()
        browser.stop_app(proc)
