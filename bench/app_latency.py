"""Latency of the Streamlit app in a real headless Chromium. Measured, not asserted.

1. App start: from ``streamlit run app.py`` to the health endpoint answering, and to Home being
   rendered in the browser (title and the quick-demo button visible).
2. Epoch -> browser: a fake run (state running, this process as its "trainer") is followed on the
   Live page; the bench appends one epoch record at a time and measures how long the browser
   takes to draw the new point on the accuracy chart (target <= 2 s).
   Then the CPU the server uses while several browser tabs poll that Live page (shared caches:
   the figures are built once per new record, not once per tab).
3. Compare with 30 runs: 30 finished fake runs (3 methods x 10 seeds, 30 epochs, step,
   sharpness and gamma records each); time from clicking "Compare" in the sidebar until the
   overlay chart and the results table are drawn: the first time (the server has not read these
   runs yet), again (median of 3), and in a second browser session; plus a full page load of
   /compare (which includes the browser starting Streamlit's frontend). Target <= 1.5 s.

No training and no workers are involved (SAMON_START_WORKERS=0), so the figures measure the app.
Needs chromium + chromedriver (Debian: apt-get install chromium chromium-driver) and selenium;
the browser and the server are driven by the tests' helper, ``tests/support/browser.py``.

Usage: python bench/app_latency.py [--epoch-writes 8] [--tabs 6] [--json bench/out/app_latency.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the browser helper: tests/support/browser.py

from support import browser  # noqa: E402
from support.browser import chart_points  # noqa: E402

from samon_core.runs.config import RunConfig  # noqa: E402
from samon_core.runs.store import RunStore  # noqa: E402

TABLE_JS = """
return Array.from(document.querySelectorAll('[data-testid=stMain] table'))
  .some(t => t.innerText.includes('Test accuracy (%)'));
"""
EDGES = [round(-0.5 + 0.05 * i, 4) for i in range(61)]
BASE = RunConfig(model="tiny_resnet", dataset="synthetic", train_subset=4000, test_subset=1000,
                 epochs=30, sharpness_samples=256, sharpness_multi_steps=0, device="cpu")


def _hist(center: float) -> list[int]:
    counts = [0] * 60
    for i in range(336):
        x = center + 0.3 * ((i % 13) - 6) / 6
        counts[min(59, max(0, int((x + 0.5) / 0.05)))] += 1
    return counts


def epoch_record(e: int, acc: float) -> dict:
    return {"kind": "epoch", "epoch": e, "step": 30 * e, "time": 3.0 * e,
            "train_loss": 4.6 - 0.1 * e, "train_acc": acc * (1 - 0.9 ** e),
            "test_loss": 4.6 - 0.09 * e, "test_acc": 0.95 * acc * (1 - 0.9 ** e),
            "epoch_time": 3.0, "eta_s": 3.0}


def fake_run(store: RunStore, cfg: RunConfig, *, group: str, epochs: int, state: str,
             acc: float, steps_per_epoch: int = 4) -> str:
    rid = store.create_run(cfg, {"owner": "bench", "group": group, "preset": None})
    shift = {"norm": 0.02, "all": 0.005}.get(cfg.scope if cfg.method == "sam" else "", 0.0)
    with store.metrics_writer(rid, fsync_every_s=None) as w:
        for param, center in (("gamma", 1.0), ("beta", 0.0)):
            w.write({"kind": "norm_stats", "epoch": 0, "step": 0, "time": 0.0, "param": param,
                     "bin_edges": EDGES, "counts": _hist(center),
                     "layers": [{"name": f"n{i}", "mean": center, "std": 0.0} for i in range(9)]})
        for e in range(1, epochs + 1):
            for k in range(steps_per_epoch):
                step = 30 * (e - 1) + 8 * k
                w.write({"kind": "step", "epoch": e, "step": step, "time": 0.1 * step,
                         "loss": 4.6 - 0.1 * e, "acc": acc * (1 - 0.9 ** e), "lr": 0.1,
                         "step_time": 0.05, "images_per_s": 2500.0})
            g = 1.0 + shift * e
            w.write({"kind": "norm_stats", "epoch": e, "step": 30 * e, "time": 3.0 * e,
                     "param": "gamma", "bin_edges": EDGES, "counts": _hist(g),
                     "layers": [{"name": f"n{i}", "mean": g, "std": 0.1} for i in range(9)]})
            w.write(epoch_record(e, acc))
        if state == "finished":
            w.write({"kind": "sharpness", "epoch": epochs, "step": 30 * epochs, "time": 90.0,
                     "steps": 1, "rho": 0.01, "value": 0.2 + shift, "m": 128, "n": 256})
    store.write_status(rid, state, epoch=epochs, progress=epochs / cfg.epochs,
                       pid=os.getpid(), host=platform.node())
    if state == "finished":
        store.write_summary(rid, {"state": "finished", "final_test_acc": 0.95 * acc,
                                  "best_test_acc": 0.95 * acc, "epochs_done": epochs})
    return rid


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(predicate, timeout: float, interval: float = 0.02):
    """The first truthy value of ``predicate()``, polled often (``TimeoutError`` at the end)."""
    return browser.wait_until(predicate, timeout, interval)


def driver():
    return browser.new_driver(prefix="samon-bench-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epoch-writes", type=int, default=8)
    ap.add_argument("--tabs", type=int, default=6,
                    help="browser tabs polling the Live page for the server-CPU measurement")
    ap.add_argument("--json", default=str(REPO / "bench" / "out" / "app_latency.json"))
    args = ap.parse_args()
    if browser.unavailable():
        sys.exit(f"app_latency: cannot run: {browser.unavailable()}")

    work = Path(tempfile.mkdtemp(prefix="samon-latency-"))
    store = RunStore(work / "runs")
    live = fake_run(store, BASE.replace(method="sam", scope="norm", epochs=200), group="glive",
                    epochs=1, state="running", acc=0.5)
    methods = {"sgd": BASE.replace(method="base"), "all": BASE.replace(method="sam", scope="all"),
               "norm": BASE.replace(method="sam", scope="norm")}
    for seed in range(10):
        for i, cfg in enumerate(methods.values()):
            fake_run(store, cfg.replace(seed=seed), group=f"gseed{seed}", epochs=30,
                     state="finished", acc=0.4 + 0.05 * i + 0.003 * seed)

    port = browser.free_port()
    t0 = time.perf_counter()
    proc = browser.start_app(store.root, port, work / "streamlit.log", cwd=work)
    base = f"http://127.0.0.1:{port}"
    results: dict = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
                     "load_avg_start": os.getloadavg()[0]}
    d = d2 = None
    try:
        browser.wait_healthy(port, proc, 60, 0.05)
        results["start_health_s"] = time.perf_counter() - t0
        d = driver()
        d.get(f"{base}/")
        wait(lambda: any("quick demo" in b.text.lower()
                         for b in d.find_elements("tag name", "button")), 60)
        results["start_first_page_s"] = time.perf_counter() - t0

        # --- epoch written -> point drawn ------------------------------------------------------
        d.get(f"{base}/live?group=glive")
        wait(lambda: chart_points(d, "live_acc_chart") >= 1, 60)
        time.sleep(2.0)
        lat = []
        with store.metrics_writer(live, fsync_every_s=None) as w:
            for k in range(args.epoch_writes):
                n = chart_points(d, "live_acc_chart")
                time.sleep(0.37 * (k % 3))  # vary the phase against the 1 s polling
                t_w = time.perf_counter()
                w.write(epoch_record(n + 1, 0.5))
                store.write_status(live, "running", epoch=n + 1, progress=(n + 1) / 200,
                                   pid=os.getpid(), host=platform.node())
                try:
                    wait(lambda n=n: chart_points(d, "live_acc_chart") >= n + 1, 30,
                         0.01)
                except TimeoutError:
                    d.save_screenshot(str(work / "timeout.png"))
                    print("timeout; screenshot in", work / "timeout.png", "points",
                          chart_points(d, "live_acc_chart"), "n", n)
                    raise
                lat.append(time.perf_counter() - t_w)
        results["epoch_to_browser_s"] = {"median": statistics.median(lat), "max": max(lat),
                                         "min": min(lat), "all": lat}

        # --- server CPU while N browser tabs poll the Live page of a training run ---------------
        tabs = args.tabs
        for _ in range(tabs - 1):
            d.switch_to.new_window("tab")
            d.get(f"{base}/live?group=glive")
        time.sleep(8.0)  # every tab loaded and polling
        n = chart_points(d, "live_acc_chart")
        cpu0, t0c = cpu_seconds(proc.pid), time.perf_counter()
        with store.metrics_writer(live, fsync_every_s=None) as w:
            for k in range(10):  # a step record every second, an epoch record every 5 s
                w.write({"kind": "step", "epoch": n + 1, "step": 1000 + k, "time": 100.0 + k,
                         "loss": 4.0, "acc": 0.3, "lr": 0.1, "step_time": 0.05,
                         "images_per_s": 2500.0})
                if k % 5 == 4:
                    n += 1
                    w.write(epoch_record(n, 0.5))
                store.heartbeat(live, epoch=n, progress=n / 200)
                time.sleep(1.0)
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0c)
        results["live_polling_tabs"] = tabs
        results["live_polling_server_cpu"] = cpu
        for handle in d.window_handles[1:]:
            d.switch_to.window(handle)
            d.close()
        d.switch_to.window(d.window_handles[0])

        # --- Compare with 30 runs ----------------------------------------------------------------
        store.write_status(live, "finished")  # 31 runs in the store, 30 finished
        time.sleep(1.5)

        def compare_ready(drv) -> bool:
            return chart_points(drv, "compare_chart") > 0 and drv.execute_script(
                TABLE_JS)

        def nav(drv, page: str) -> None:
            link = wait(lambda: next(a for a in drv.find_elements(
                "css selector", "[data-testid=stSidebarNav] a") if
                a.get_attribute("href").rstrip("/").endswith(page)), 30)
            link.click()

        def timed_nav(drv) -> float:
            nav(drv, str(port))  # Home (its href is the bare origin)
            wait(lambda: any("quick demo" in b.text.lower()
                             for b in drv.find_elements("tag name", "button")), 30)
            t = time.perf_counter()
            nav(drv, "/compare")
            wait(lambda: compare_ready(drv), 60)
            return time.perf_counter() - t

        results["compare_30_nav_cold_s"] = timed_nav(d)  # first look at these 30 runs
        results["compare_30_nav_warm_s"] = statistics.median(timed_nav(d) for _ in range(3))
        d2 = driver()
        d2.get(f"{base}/")
        wait(lambda: d2.find_elements("tag name", "button"), 60)
        results["compare_30_nav_other_session_s"] = timed_nav(d2)
        # the same again: the first time, that fresh browser also had to load plotly.js
        results["compare_30_nav_other_session_again_s"] = timed_nav(d2)
        t = time.perf_counter()
        d.get(f"{base}/compare")
        wait(lambda: compare_ready(d), 60)
        results["compare_30_full_page_load_s"] = time.perf_counter() - t
        n_traces = d.execute_script(
            "return document.querySelector('.st-key-compare_chart .js-plotly-plot').data.length")
        results["compare_traces"] = n_traces
    finally:
        for drv in (d, d2):
            if drv is not None:
                with contextlib.suppress(Exception):
                    drv.quit()
        browser.stop_app(proc, timeout=20)
    results["load_avg_end"] = os.getloadavg()[0]

    print(f"machine: {results['machine']}, load average {results['load_avg_start']:.1f} -> "
          f"{results['load_avg_end']:.1f}")
    print(f"app start: health {results['start_health_s']:.2f} s, first page in the browser "
          f"{results['start_first_page_s']:.2f} s")
    e = results["epoch_to_browser_s"]
    print(f"epoch written -> shown: median {e['median']:.2f} s, min {e['min']:.2f} s, max "
          f"{e['max']:.2f} s over {len(e['all'])} epochs (target <= 2 s)")
    print(f"server CPU with {results['live_polling_tabs']} tabs polling Live (a step record per "
          f"second): {100 * results['live_polling_server_cpu']:.0f}% of one core")
    print(f"Compare, 30 runs (target <= 1.5 s): opened from the sidebar "
          f"{results['compare_30_nav_cold_s']:.2f} s the first time (cold caches), "
          f"{results['compare_30_nav_warm_s']:.2f} s again (median of 3), "
          f"{results['compare_30_nav_other_session_s']:.2f} s in a second browser session "
          f"(which first loads plotly.js; {results['compare_30_nav_other_session_again_s']:.2f}"
          f" s the next time); "
          f"full page load of /compare {results['compare_30_full_page_load_s']:.2f} s; "
          f"{results['compare_traces']} traces")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
