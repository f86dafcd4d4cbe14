"""The Playground's chart answers in the browser: a move of its own ρ and step sliders in headless
Chromium changes the picture with no message to the Streamlit server (no rerun), and the link
follows the move and reproduces it on a reload.

Debian's ``chromium`` + ``chromedriver`` through Selenium (``support.browser``); skipped, saying
why, when they are missing. About 20 s: one server start, two page loads.
"""

from __future__ import annotations

import time

import pytest
from support import browser
from support.browser import plotly_sliders, wait_until

pytestmark = pytest.mark.browser

if browser.unavailable():
    pytest.skip(browser.unavailable(), allow_module_level=True)

KEY = "playground_map"

# The chart as the page shows it: SAM's path, the pairs at the step shown, the sentences.
STATE_JS = """
const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return null; }
const by = name => el.data.find(t => t.name === name) || {};
const shown = [...el.querySelectorAll('g.textpoint')].map(t => t.textContent).join(' ');
return {sam: by('SAM').x, pairs: by('SAM at the step shown').x, text: shown,
        running: !!document.querySelector('[data-testid=stStatusWidget]')};
"""


def state(driver) -> dict:
    return driver.execute_script(STATE_JS, KEY)


def test_the_chart_sliders_move_without_a_rerun_and_the_link_follows(tmp_path):
    port = browser.free_port()
    proc = browser.start_app(tmp_path / "runs", port, tmp_path / "streamlit.log", cwd=tmp_path)
    driver = None
    try:
        browser.wait_healthy(port, proc)
        driver = browser.new_driver()
        browser.count_websocket_sends(driver)
        driver.get(f"http://127.0.0.1:{port}/playground?pg_steps=60")
        wait_until(lambda: browser.chart_points(driver, KEY) > 0, 60, what="the chart")
        wait_until(lambda: not state(driver)["running"], 30, what="the first run to end")
        time.sleep(0.5)
        before, sent = state(driver), browser.websocket_sends(driver)
        assert plotly_sliders(driver, KEY)["rho"]["value"] == "0.30"
        assert plotly_sliders(driver, KEY)["step"]["value"] == "60"  # the end, clamped
        assert "With ρ = 0.30:" in before["text"]

        browser.click_plotly_slider(driver, KEY, "rho", 2)  # ρ = 0.10
        moved = wait_until(lambda: (s := state(driver))["sam"] != before["sam"] and s, 5,
                           0.05, "SAM's path to change")
        assert "With ρ = 0.10:" in moved["text"] and "ρ = 0.30" not in moved["text"]
        sliders = plotly_sliders(driver, KEY)
        assert sliders["rho"]["value"] == "0.10" and sliders["step"]["value"] == "60"
        ranges = driver.execute_script(  # the loss axis follows ρ (no autorange in a frame)
            "const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');"
            "const f = el._transitionData._frames.find(f => f.name === 'r2');"
            "return [el._fullLayout.yaxis2.range, f.layout.yaxis2.range];", KEY)
        assert ranges[0] == pytest.approx(ranges[1])

        browser.click_plotly_slider(driver, KEY, "step", 10)
        stepped = wait_until(lambda: (s := state(driver))["pairs"] != moved["pairs"] and s, 5,
                             0.05, "the markers to move")
        assert stepped["sam"] == moved["sam"]  # the step keeps ρ ...
        assert "With ρ = 0.10:" in stepped["text"]  # ... and its sentences
        assert plotly_sliders(driver, KEY)["rho"]["value"] == "0.10"
        # no rerun: nothing went to the server, and Streamlit never said "Running"
        assert browser.websocket_sends(driver) == sent and not stepped["running"]
        time.sleep(1.0)  # the address is written within 150 ms; still no message after it
        assert browser.websocket_sends(driver) == sent

        # ▶ plays the steps from 0 at the ρ shown, and ❚❚ stops it
        buttons = driver.find_elements("css selector", f".st-key-{KEY} g.updatemenu-button")
        buttons[0].click()
        wait_until(lambda: 5 < int(plotly_sliders(driver, KEY)["step"]["value"]) < 60, 5,
                   0.02, "the step slider to follow the animation from 0")
        time.sleep(0.5)
        buttons[1].click()
        played = state(driver)
        assert played["sam"] == moved["sam"] and "With ρ = 0.10:" in played["text"]
        assert plotly_sliders(driver, KEY)["rho"]["value"] == "0.10"
        browser.click_plotly_slider(driver, KEY, "step", 10)
        wait_until(lambda: plotly_sliders(driver, KEY)["step"]["value"] == "10", 5, 0.05,
                   "the step back at 10")

        # the link follows the chart (the address bar and the share box), and a reload of it
        # draws the chart where it was left
        url = wait_until(lambda: "pg_rho=0.10" in driver.current_url
                         and "pg_step=10" in driver.current_url and driver.current_url,
                         3, 0.05, "the address to follow the chart")
        box = driver.execute_script("return document.getElementById('samon-pg-share').value")
        assert "pg_rho=0.10" in box and "pg_step=10" in box and "pg_steps=60" in box
        # a Streamlit control's rerun reads the moved ρ and step from the address: the chart
        # is redrawn (without ASAM) where the user left it, not where the page began
        pill = next(b for b in driver.find_elements("css selector",
                                                    ".st-key-pg_methods button")
                    if b.text.strip() == "ASAM")
        pill.click()
        wait_until(lambda: "ASAM" not in driver.execute_script(
            "const el = document.querySelector('.st-key-' + arguments[0] + ' .js-plotly-plot');"
            "return el.data.map(t => t.name);", KEY), 60, 0.1, "the chart without ASAM")
        sliders = plotly_sliders(driver, KEY)
        assert sliders["rho"]["value"] == "0.10" and sliders["step"]["value"] == "10"
        assert "With ρ = 0.10:" in state(driver)["text"]
        url = driver.current_url
        assert "pg_rho=0.10" in url and "pg_methods" in url

        driver.get(url)
        wait_until(lambda: plotly_sliders(driver, KEY).get("rho", {}).get("value") == "0.10",
                   60, what="the reloaded chart at ρ = 0.10")
        assert plotly_sliders(driver, KEY)["step"]["value"] == "10"
        assert "With ρ = 0.10:" in state(driver)["text"]
    finally:
        if driver is not None:
            driver.quit()
        browser.stop_app(proc)
