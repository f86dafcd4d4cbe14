"""The Streamlit app with ``streamlit.testing.v1.AppTest``: every page renders, the launch form
explains bad input and enqueues runs (the real job service with its SQLite queue, no worker), the
Live page shows a run's charts and what happened to failed runs, Compare exports the runs.
Plus: page code never imports torch, directly or through the modules it imports, and the view
models of ``samon_app``."""

from __future__ import annotations

import ast
import csv
import io
import json
import pkgutil
import subprocess
import sys
import textwrap
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support.apptest import app, page, plotly_specs, texts
from support.configs import TINY, tiny_config
from support.fakes import EDGES, fake_run, hist, three_methods
from support.paths import REPO

import samon_app
from samon_core.runs.store import RunStore

# Two epochs of the tiny config; the real training run also probes sharpness (one 1-step probe),
# so that the Live page has a sharpness chart to show.
TINY_PROBED = tiny_config(sharpness_samples=64, sharpness_m=32, sharpness_multi_steps=0)


def results_frame(at: AppTest):
    """Compare's results table (the dataframe with a 'Test accuracy (%)' row)."""
    return next(d.value for d in at.dataframe if "Test accuracy (%)" in d.value.index)


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


PAGES = ("app_pages/home.py", "app_pages/launch.py", "app_pages/live.py", "app_pages/compare.py")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_on_an_empty_store(runs, path):
    at = page(app(), path)
    assert at.title, f"{path} shows no title"


def test_every_page_renders_with_runs(runs):
    for cfg in three_methods().values():
        fake_run(runs, cfg)
    at = app(group="g1")
    at.run()
    for path in PAGES[1:] + PAGES[:1]:
        at.switch_page(path).run()
        assert not at.exception, (path, [e.message for e in at.exception])
        assert at.title


def test_home_is_readable_without_clicking(runs):
    at = app()
    at.run()
    assert not at.exception
    body = texts(at)
    assert len(at.latex) >= 4  # objective, SAM step, ASAM, Norm(x), SAM-ON's perturbation
    assert any("\\epsilon" in x.value for x in at.latex)
    assert "84.19" in body and "83.11" in body and "80.71" in body
    assert "only to the normalization layers" in body
    assert "sharper" in body.lower()
    assert any("quick demo" in b.label.lower() for b in at.button)


def test_home_quick_demo_button_enqueues_the_demo(runs):
    at = app(owner="alice")
    at.run()
    next(b for b in at.button if "quick demo" in b.label.lower()).click().run()
    assert not at.exception, [e.message for e in at.exception]
    df = runs.list_runs()
    assert sorted(df["method_label"]) == ["SAM-ON", "SAM-all", "SGD"]
    assert set(df["preset"]) == {"cpu-quick-demo"}
    assert set(df["owner"]) == {"alice"}
    assert set(df["dataset"]) == {"synthetic"}
    assert df["group"].nunique() == 1
    assert at.title[0].value == "Live"  # switched to the Live page on the new group
    assert at.selectbox(key="live_pick").value == df["group"].iloc[0]
    assert at.query_params["group"] == df["group"].iloc[0]


# ---------------------------------------------------------------------------------------------
# launch form
# ---------------------------------------------------------------------------------------------


def test_launch_form_explains_bad_input_next_to_the_field(runs):
    at = page(app(), "app_pages/launch.py")
    assert not at.error
    at.number_input(key="epochs").set_value(0).run()
    at.number_input(key="train_subset").set_value(50_000).run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("Epochs must be an integer in [1, 400]") for e in errors), errors
    assert any("only 10,000 images" in e for e in errors), errors
    assert any("Fix the fields marked in red" in e for e in errors)
    launch = next(b for b in at.button if b.key == "launch_form_disabled")
    assert launch.disabled
    assert runs.list_runs().empty


def test_launch_form_cross_field_and_method_errors(runs):
    at = page(app(), "app_pages/launch.py")
    at.multiselect(key="methods").set_value([]).run()
    at.number_input(key="epochs").set_value(2).run()
    at.number_input(key="warmup_epochs").set_value(3).run()
    errors = [e.value for e in at.error]
    assert any("at least one method" in e for e in errors), errors
    at.multiselect(key="methods").set_value(["SAM-ON"]).run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("Warmup epochs must be < epochs (2)") for e in errors), errors
    at.number_input(key="warmup_epochs").set_value(0).run()
    at.number_input(key="rho_norm").set_value(-1.0).run()
    errors = [e.value for e in at.error]
    assert any("rho for SAM-ON must be a number >= 0" in e for e in errors), errors


def test_launch_shows_estimate_queue_and_paper_rho(runs):
    fake_run(runs, TINY.replace(method="base"), state="queued", epochs_done=0)
    at = page(app(), "app_pages/launch.py")
    metrics = {m.label: m.value for m in at.metric}
    assert any(label.startswith("Estimated time") for label in metrics)
    assert metrics["Queue"] == "1 ahead"
    assert metrics["Runs"] == "3"
    captions = " ".join(c.value for c in at.caption)
    assert "paper's best: **0.2**" in captions and "paper's best: **1**" in captions


def test_launch_enqueues_a_comparison_group(runs):
    at = page(app(owner="bob"), "app_pages/launch.py")
    at.multiselect(key="methods").set_value(["SGD", "SAM-ON", "random mask"]).run()
    for key, value in (("epochs", 1), ("train_subset", 256), ("test_subset", 128),
                       ("seeds", 2), ("seed", 5)):
        at.number_input(key=key).set_value(value).run()
    at.number_input(key="rho_norm").set_value(0.5).run()
    assert not at.error, [e.value for e in at.error]
    next(b for b in at.button if b.key == "launch_form").click().run()
    assert not at.exception, [e.message for e in at.exception]
    df = runs.list_runs()
    assert len(df) == 6  # 3 methods x 2 seeds
    assert set(df["state"]) == {"queued"}
    assert set(df["owner"]) == {"bob"}
    assert df["group"].nunique() == 1
    assert sorted(set(df["seed"])) == [5, 6]
    configs = [runs.read_config(r) for r in df["run_id"]]
    assert {c.epochs for c in configs} == {1} and {c.train_subset for c in configs} == {256}
    samon = [c for c in configs if c.method == "sam" and c.scope == "norm"]
    assert {c.resolved_rho() for c in samon} == {0.5}
    rand = [c for c in configs if c.scope == "random" and c.method == "sam"]
    assert {c.rho for c in rand} == {None}  # empty field: the paper's value
    assert at.title[0].value == "Live"


def test_launch_preset_button_enqueues_the_preset(runs):
    at = page(app(owner="erin"), "app_pages/launch.py")
    assert at.selectbox(key="preset").value == "cpu-quick-demo"
    next(b for b in at.button if b.key == "launch_preset").click().run()
    assert not at.exception
    df = runs.list_runs()
    assert len(df) == 3 and set(df["preset"]) == {"cpu-quick-demo"}
    assert set(df["owner"]) == {"erin"}


def test_launch_copy_preset_into_form(runs):
    at = page(app(), "app_pages/launch.py")
    at.selectbox(key="preset").set_value("sparse-controls").run()
    next(b for b in at.button if b.key == "edit_preset").click().run()
    assert not at.exception
    assert at.multiselect(key="methods").value == ["SAM-all", "SAM-ON", "no-norm", "random mask"]


def test_launch_config_comes_from_the_url(runs):
    """A link reproduces the configuration, seed included."""
    at = page(app(methods=["SAM-all", "SAM-ON"], epochs="3", seed="42", lr="0.05",
                  rho_norm="2.5", variant="ASAM elementwise", train_subset="512", owner="erin"),
              "app_pages/launch.py")
    assert at.multiselect(key="methods").value == ["SAM-all", "SAM-ON"]
    assert at.number_input(key="epochs").value == 3
    assert at.number_input(key="seed").value == 42
    assert at.number_input(key="rho_norm").value == 2.5
    assert at.selectbox(key="variant").value == "ASAM elementwise"
    next(b for b in at.button if b.key == "launch_form").click().run()
    configs = [runs.read_config(r) for r in runs.list_runs()["run_id"]]
    assert {c.seed for c in configs} == {42}
    assert {c.lr for c in configs} == {0.05}
    assert {c.adaptive for c in configs} == {"elementwise"}
    assert {c.resolved_rho() for c in configs if c.scope == "norm"} == {2.5}
    assert {c.resolved_rho() for c in configs if c.scope == "all"} == {5.0}  # paper's ASAM


def test_launch_refusal_is_explained(runs, monkeypatch):
    monkeypatch.setenv("SAMON_MAX_EPOCHS", "2")
    at = page(app(owner="erin"), "app_pages/launch.py")
    next(b for b in at.button if b.key == "launch_form").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(e.startswith("Not launched") and "epochs" in e for e in errors), errors
    assert runs.list_runs().empty


# ---------------------------------------------------------------------------------------------
# live
# ---------------------------------------------------------------------------------------------


def _train_real_tiny_run(store: RunStore, group: str) -> str:
    config = TINY_PROBED.replace(method="sam", scope="norm")
    rid = store.create_run(config, {"owner": "alice", "group": group})
    code = textwrap.dedent(f"""
        from samon_core.runs.config import RunConfig
        from samon_core.train.trainer import train
        train(RunConfig.load({str(store.run_dir(rid))!r}), {str(store.run_dir(rid))!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, cwd=REPO)
    return rid


@pytest.mark.slow
def test_live_shows_a_finished_tiny_runs_charts(runs):
    pytest.importorskip("torch")
    rid = _train_real_tiny_run(runs, "greal")
    assert runs.read_status(rid)["state"] == "finished"
    at = page(app(group="greal"), "app_pages/live.py")
    specs = plotly_specs(at)
    body = texts(at)
    for view in ("Sharpness", "γ distribution", "Speed"):
        at.segmented_control(key="view").set_value(view).run()
        assert not at.exception
        specs.update(plotly_specs(at))
        body += texts(at)
    acc = specs["live_acc_chart"]["data"]
    assert {t["name"] for t in acc} == {"SAM-ON (train)", "SAM-ON"}  # dashed train, solid test
    assert all(len(t["x"]) == 2 for t in acc)  # two epochs
    assert specs["live_sharp_chart"]["data"], "no sharpness trace"
    gamma = specs["live_gamma_anim"]
    assert len(gamma["frames"]) == 3  # initialisation + 2 epochs
    assert gamma["layout"]["xaxis"]["autorange"] is False  # fixed axes
    assert specs["live_gamma_layers"]["data"] and specs["live_step_time"]["data"]
    assert "finished (2 epochs)" in " ".join(p.proto.text for p in at.get("progress"))
    assert "Synthetic data" in body
    assert body.count("What to look for") == 6  # under every chart or pair of charts
    assert "updates every second" not in body  # nothing runs: no polling


def test_comparison_members_come_from_one_read_and_match_each_runs_meta(runs):
    """The pages' comparison groups (reads._snapshot: the listing and one read of every run's
    requesters) are what each run's read_meta says: a run reused by another owner in their
    comparison is in both groups, under who asked for it there."""
    from app_pages import reads
    from samon_app.tables import group_members

    shared = fake_run(runs, TINY.replace(method="base"), owner="alice", group="ga")
    fake_run(runs, TINY.replace(method="sam", scope="norm"), owner="alice", group="ga")
    runs.add_requester(shared, "bob", "gb")
    fake_run(runs, TINY.replace(method="sam", scope="all"), owner="bob", group="gb")
    reads._snapshot.clear()
    df, members = reads._snapshot(str(runs.root))
    assert members == group_members({r: runs.read_meta(r) for r in df["run_id"]})
    assert members["gb"][shared] == "bob" and members["ga"][shared] == "alice"
    assert len(members["ga"]) == 2 and len(members["gb"]) == 2


def test_the_pages_read_the_database_samon_toml_names(runs, tmp_path):
    """A database URL given in samon.toml (not the environment) is the one every page reads:
    the runs are listed with their state and the teacher's room, and no second, empty SQLite
    database is made in the run folder (its runs would read as 'not in the database')."""
    from support.teacher import TEACHER_TOKEN, teacher_settings

    from samon_core.service import Room, set_room

    other = tmp_path / "elsewhere" / "room.db"
    other.parent.mkdir()
    (tmp_path / "samon.toml").write_text(f'database_url = "sqlite:///{other}"\n')
    store = RunStore(runs.root, database_url=f"sqlite:///{other}")
    rid = fake_run(store, TINY.replace(method="base"), group="gt")
    set_room(Room(message="Read the database samon.toml names"), teacher_token=TEACHER_TOKEN,
             store=store, settings=teacher_settings())
    at = page(app(group="gt"), "app_pages/compare.py")
    assert rid in set(at.dataframe[0].value["run_id"]) and not at.error, \
        [e.value for e in at.error]
    assert "Read the database samon.toml names" in texts(at)
    assert not (runs.root / "samon.db").exists()


def test_live_follows_the_group_in_the_url(runs):
    fake_run(runs, TINY.replace(method="base"), group="gold")
    time.sleep(1.1)  # a newer group, which would be the default
    fake_run(runs, TINY.replace(method="base", seed=1), group="gnew")
    at = page(app(group="gold"), "app_pages/live.py")
    assert at.selectbox(key="live_pick").value == "gold"
    at.selectbox(key="live_pick").set_value("gnew").run()
    assert at.query_params["group"] == "gnew"
    at = page(app(owner="alice"), "app_pages/live.py")
    assert at.selectbox(key="live_pick").value == "gnew"  # the user's newest by default
    at = page(app(), "app_pages/live.py")  # a user without runs: nobody else's comparison
    assert at.selectbox(key="live_pick").value is None
    assert "You have no comparison yet" in texts(at)
    assert not at.get("plotly_chart")


def test_live_shows_progress_eta_and_cancels_own_runs(runs):
    from samon_core import service

    key = runs.register_owner("alice")  # before her runs: a name that owns runs is not registered
    # 40 epochs: 0.1 s a step, ~15 s left (4 epochs left 0.4 s: past its estimate at once)
    running = fake_run(runs, TINY.replace(epochs=40, method="sam", scope="norm"),
                       state="running", epochs_done=1, owner="alice")
    queued = service.submit(TINY.replace(method="base", seed=3), owner="alice", group="g1",
                            store=runs, owner_key=key)
    fake_run(runs, TINY.replace(method="sam", scope="all"), state="running", epochs_done=1,
             owner="carol")
    at = page(app(group="g1", owner="alice", key=key), "app_pages/live.py")  # alice's link
    body = texts(at)
    assert "updates every second" in body
    progress = [p.proto.text for p in at.get("progress")]
    assert any("1 of 40 epochs done" in t and "left" in t for t in progress), progress
    assert any("waiting in the queue (position 1)" in t for t in progress), progress
    cancel = {b.key: b for b in at.button if b.key and b.key.startswith("cancel_")}
    assert cancel[f"cancel_{running}"].disabled is False
    carol = next(k for k in cancel if k not in (f"cancel_{running}", f"cancel_{queued}"))
    assert cancel[carol].disabled  # not alice's run
    cancel[f"cancel_{queued}"].click().run()
    assert not at.exception
    assert runs.read_status(queued)["state"] == "cancelled"


def test_live_says_what_happened_to_failed_runs(runs):
    fake_run(runs, TINY.replace(method="base"), state="failed", epochs_done=1,
             message="RuntimeError: out of memory")
    fake_run(runs, TINY.replace(method="sam", scope="all"), state="diverged", epochs_done=1,
             message="diverged: the loss became nan at epoch 2, step 9. Try a smaller "
             "learning rate or rho.")
    fake_run(runs, TINY.replace(method="sam", scope="norm"), state="interrupted", epochs_done=1,
             owner="guest")
    at = page(app(group="g1"), "app_pages/live.py")
    errors = " ".join(e.value for e in at.error)
    warnings = " ".join(w.value for w in at.warning)
    assert "This run failed: RuntimeError: out of memory" in errors
    assert "the loss became nan" in errors
    assert "interrupted" in warnings.lower() or "stopped" in warnings
    assert any(b.key and b.key.startswith("resume_") for b in at.button)


def test_live_group_includes_reused_runs(runs):
    """A comparison that reused an identical finished run shows it too."""
    from samon_core import service

    done = fake_run(runs, TINY.replace(method="base"), group="old", owner="bob")
    group, ids = service.submit_group({"SGD": TINY.replace(method="base"),
                                       "SAM-ON": TINY.replace(method="sam", scope="norm")},
                                      owner="alice", store=runs)
    assert done in ids
    at = page(app(group=group), "app_pages/live.py")
    progress = " ".join(p.proto.text for p in at.get("progress"))
    assert "finished" in progress and "waiting in the queue" in progress


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def _seeded_runs(store: RunStore) -> list[str]:
    ids = []
    for seed in (0, 1):
        for (label, cfg), acc in zip(three_methods().items(), (0.5, 0.6, 0.7), strict=True):
            ids.append(fake_run(store, cfg.replace(seed=seed), acc=acc + 0.01 * seed,
                                owner="alice" if label != "SGD" else "bob"))
    return ids


def test_compare_overlays_with_bands_and_paper_table(runs):
    ids = _seeded_runs(runs)
    at = page(app(), "app_pages/compare.py")
    spec = plotly_specs(at)["compare_chart"]
    names = [t.get("name") for t in spec["data"] if t.get("name")]
    assert names == ["SGD (n=2)", "SAM-all (n=2)", "SAM-ON (n=2)"]
    assert any(t.get("fill") == "toself" for t in spec["data"])  # std bands
    table = results_frame(at)
    assert list(table.columns) == ["SGD", "SAM-all", "SAM-ON"]  # named by method
    assert list(table.loc["runs (n)"]) == ["2", "2", "2"]
    assert all("±" in v for v in table.loc["Test accuracy (%)"])
    assert "l_inf sharpness, 1 step, rho = 0.01" in table.index
    assert {"time per step (ms)", "mean gamma (final)"} <= set(table.index)
    assert len(ids) == 6


def test_compare_filters(runs):
    _seeded_runs(runs)
    at = page(app(), "app_pages/compare.py")
    at.multiselect(key="f_method_label").set_value(["SAM-ON"]).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["method_label"]) == {"SAM-ON"} and len(table) == 2


def test_compare_export_contains_the_runs(runs, monkeypatch):
    ids = _seeded_runs(runs)
    exports: dict[str, str] = {}
    original = st.download_button

    def recording(label, data, *args, **kwargs):
        exports[kwargs.get("key") or label] = data() if callable(data) else data
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording)
    page(app(), "app_pages/compare.py")
    rows = list(csv.DictReader(io.StringIO(exports["dl_csv"])))
    assert {r["run_id"] for r in rows} == set(ids)
    assert {r["kind"] for r in rows} == {"epoch", "step", "sharpness"}
    assert {r["method"] for r in rows} == {"SGD", "SAM-all", "SAM-ON"}
    data = json.loads(exports["dl_json"])
    assert {r["run_id"] for r in data["runs"]} == set(ids)
    assert all(r["config"]["dataset"] == "synthetic" and r["synthetic_data"] for r in data["runs"])
    assert all(any(rec["kind"] == "epoch" for rec in r["records"]) for r in data["runs"])


def test_compare_deletes_only_own_selected_runs(runs):
    key = runs.register_owner("alice")  # before her runs, as a student's first launch does
    ids = _seeded_runs(runs)
    at = page(app(owner="alice", key=key), "app_pages/compare.py")
    table = at.dataframe[0].value
    at.session_state["compare_table"] = {"selection": {"rows": list(range(len(table))),
                                                       "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    pick = at.multiselect(key="delete_pick")
    mine = [r for r in ids if runs.read_meta(r)["owner"] == "alice"]
    assert sorted(pick.value) == sorted(mine)  # bob's runs are not offered
    at.checkbox(key="delete_sure").check().run()
    at.button(key="delete_go").click().run()
    assert not at.exception
    left = set(runs.list_runs()["run_id"])
    assert left == set(ids) - set(mine)


# ---------------------------------------------------------------------------------------------
# no torch in the pages
# ---------------------------------------------------------------------------------------------

PAGE_FILES = [REPO / "app.py", *sorted((REPO / "app_pages").glob("*.py"))]
TORCH = ("torch", "torchvision")
OUR_PACKAGES = ("samon_core", "samon_app")


def _is_our_module(name: str) -> bool:
    """A module (file or package) of samon_core / samon_app in this checkout."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def page_imports() -> dict[str, str]:
    """Every module app.py and app_pages/ import (name -> the file that imports it), without the
    standard library and app_pages itself. ``from samon_core import service`` counts as
    ``samon_core.service`` when that is a module, else as ``samon_core``."""
    found: dict[str, str] = {}
    for path in PAGE_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                names = [n if _is_our_module(n) else node.module for n in subs]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "app_pages":
                    found.setdefault(name, path.name)
    return found


def torch_importers(modules: list[str]) -> list[str]:
    """The modules, imported one after the other in a fresh interpreter, after whose import torch
    is loaded (the first one is the culprit; the rest follow it)."""
    code = textwrap.dedent(f"""
        import importlib, json, sys
        bad = []
        for name in {modules!r}:
            importlib.import_module(name)
            if any(m.split(".")[0] in {TORCH!r} for m in sys.modules):
                bad.append(name)
        print(json.dumps(bad))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_page_dependencies_do_not_import_torch():
    """No samon_app module imports torch, directly or through what it imports."""
    modules = [f"samon_app.{m.name}" for m in pkgutil.iter_modules(samon_app.__path__)]
    assert "samon_app.charts" in modules and "samon_app.forms" in modules
    bad = torch_importers(modules)
    assert not bad, f"{bad[0]} imports torch"


def test_page_code_imports_only_torch_free_modules():
    """The rule for app.py and app_pages/: no torch; samon_core only through modules that do not
    load torch themselves; samon_app (torch-free, see above) and other libraries as needed, as
    long as they do not pull torch in either."""
    imports = page_imports()
    for name, where in imports.items():
        assert name.split(".")[0] not in TORCH, f"{where} imports {name}"
        if name.split(".")[0] in OUR_PACKAGES:
            assert _is_our_module(name), f"{where} imports {name}, which is no module here"
    assert any(n.startswith("samon_core.") for n in imports)  # the check below sees them
    bad = torch_importers(sorted(imports))
    assert not bad, f"{imports[bad[0]]} imports {bad[0]}, which loads torch"


def test_no_pages_folder_next_to_app():
    """With a pages/ folder Streamlit runs its old directory mode until a session has called
    st.navigation: the first deep link after a restart would bypass app.py (no sidebar, wrong
    navigation). The page scripts therefore live in app_pages/."""
    assert not (REPO / "pages").exists()
    assert all((REPO / p).is_file() for p in PAGES)


def test_run_reader_shares_reads(runs):
    """20 sessions polling the same run within the throttle interval cause one file read."""
    from samon_app.reader import RunReader

    rid = fake_run(runs, TINY.replace(method="base"))
    reader = RunReader(runs, min_interval_s=5.0)
    for _ in range(20):
        data = reader.get(rid)
    assert reader.reads == 1 and len(data.epochs) == 2
    with runs.metrics_writer(rid) as w:
        w.write({"kind": "epoch", "epoch": 3, "step": 99, "time": 9.0, "test_acc": 0.6})
    time.sleep(0.01)
    assert len(reader.get(rid, max_age_s=0).epochs) == 3
    assert reader.reads == 2


# ---------------------------------------------------------------------------------------------
# view models (pure)
# ---------------------------------------------------------------------------------------------


def test_views_smoothing_bands_and_results_table():
    from samon_app.formatting import mean_std_text
    from samon_app.reader import run_infos
    from samon_app.series import mean_std_series, seed_groups, smooth
    from samon_app.tables import results_table

    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased
    assert smooth([0.0, 10.0], 0.0) == [0.0, 10.0]
    xs, mean, std, n = mean_std_series([([1, 2], [1.0, 3.0]), ([1, 2, 3], [3.0, 5.0, 7.0])])
    assert xs == [1, 2, 3] and mean == [2.0, 4.0, 7.0] and n == [2, 2, 1]
    assert std[0] == pytest.approx(2 ** 0.5) and std[2] == 0.0
    assert mean_std_text([0.8419, 0.8399, 0.8439], 100.0) == "84.19 ± 0.20"

    def info(key, seed, acc):
        cfg = three_methods()[key].replace(seed=seed).to_dict()
        return {"run_id": f"{key}-{seed}", "config": cfg, "meta": {},
                "status": {"state": "finished"}, "summary": {"final_test_acc": acc}}

    infos = run_infos([info("SGD", 0, 0.80), info("SGD", 1, 0.81),
                             info("SAM-ON", 0, 0.84), info("SAM-ON", 1, 0.85)])
    assert [i.label for i in infos] == ["SGD · seed 0", "SGD · seed 1", "SAM-ON · seed 0",
                                         "SAM-ON · seed 1"]
    groups = seed_groups(infos)
    assert [g.label for g in groups] == ["SGD", "SAM-ON"]
    table = results_table(groups, {})
    assert table.columns == ["SGD", "SAM-ON"] and table.n == [2, 2]
    acc = table.rows.index("Test accuracy (%)")
    assert table.cells[acc] == ["80.50 ± 0.71", "84.50 ± 0.71"]
    assert table.best[acc] == [False, True]


def test_views_histograms_share_fixed_axes():
    from samon_app.gamma import distribution_summary, histogram_frames

    def rec(epoch, center):
        return {"kind": "norm_stats", "param": "gamma", "epoch": epoch, "bin_edges": EDGES,
                "counts": hist(center), "layers": [{"name": "n", "mean": center, "std": 0}]}

    hf = histogram_frames({"SGD": [rec(0, 1.0), rec(1, 1.0)],
                                 "SAM-ON": [rec(0, 1.0), rec(1, 1.3), rec(2, 1.5)]})
    assert hf.epochs == [0, 1, 2] and hf.labels == ["SGD", "SAM-ON"]
    assert hf.x_range[0] < 0.7 and hf.x_range[1] > 1.8  # covers every epoch of every run
    assert all(abs(sum(d) - 1.0) < 1e-9 for per in hf.density.values() for d in per.values())
    summary = distribution_summary([rec(0, 1.0), rec(2, 1.5)])
    assert summary["hist_mean"].iloc[1] > summary["hist_mean"].iloc[0]


def test_views_time_estimate_is_calibrated_on_finished_runs():
    from samon_app.estimates import calibration, estimate_group
    from samon_core.runs.estimate import estimate_seconds

    cfg = TINY.replace(method="base")
    rows = [{"config": cfg.to_dict(),
             "summary": {"state": "finished", "train_time_s": 10 * estimate_seconds(cfg, "cpu"),
                         "device": "cpu"}}]
    factors = calibration(rows)
    assert factors["cpu"][0] == pytest.approx(10.0) and factors["cpu"][1] == 1
    est = estimate_group({"SGD": cfg}, 2, "cpu", 1, factors)
    assert est["total_s"] == pytest.approx(20 * estimate_seconds(cfg, "cpu"))
    assert est["calibrated_on"] == 1
    assert estimate_group({"SGD": cfg}, 1, "cuda", 1, factors)["calibrated_on"] == 0


# ---------------------------------------------------------------------------------------------
# side by side and truthful: one colour per method, cost ratios, Compare's default, axes
# ---------------------------------------------------------------------------------------------


def _method_of(name: str) -> str:
    return next(m for m in ("SAM-all", "SAM-ON", "SGD") if name.startswith(m))


def _colors(traces: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for t in traces:
        if t.get("name"):
            out.setdefault(_method_of(t["name"]), set()).add(t["line"]["color"])
    return out


def test_each_method_has_one_colour_on_every_page_and_bar(runs):
    from samon_core.catalog.methods import method_color, method_key

    for seed in (0, 1):
        for cfg in three_methods().values():
            fake_run(runs, cfg.replace(seed=seed), owner="alice")
    fake_run(runs, TINY.replace(method="sam", scope="norm", rho=0.5), owner="alice")
    at = page(app(group="g1", owner="alice"), "app_pages/live.py")
    live = _colors(plotly_specs(at)["live_acc_chart"]["data"])
    css = " ".join(h.proto.body for h in at.get("html"))
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    compare = _colors(plotly_specs(at)["compare_chart"]["data"])
    expected = {name: {method_color(method_key(cfg))} for name, cfg in three_methods().items()}
    assert live == expected  # seeds and other settings of a method share its colour
    assert compare == expected
    for name, (color,) in expected.items():
        assert color in css, f"no progress bar in {name}'s colour"
    assert css.count("stProgressBarTrack") == 7  # one rule per run


def test_compare_opens_on_the_users_latest_comparison(runs):
    fake_run(runs, TINY.replace(method="base"), owner="alice", group="a-old")
    time.sleep(1.1)
    mine = fake_run(runs, TINY.replace(method="sam", scope="norm"), owner="alice", group="a-new")
    time.sleep(1.1)
    fake_run(runs, TINY.replace(method="sam", scope="all"), owner="bob", group="b-newest")
    fake_run(runs, TINY.replace(method="base", seed=7), owner="alice", group="a-new",
             state="cancelled", epochs_done=1)
    at = page(app(owner="alice"), "app_pages/compare.py")
    assert at.selectbox(key="c_group").value == "a-new"
    assert list(at.dataframe[0].value["run_id"]) == [mine]  # no cancelled run, nobody else's
    assert list(results_frame(at).columns) == ["SAM-ON"]
    at.selectbox(key="c_group").set_value("").run()  # all runs: other users' too
    assert len(at.dataframe[0].value) == 3


def test_compare_bands_are_lines_without_legend(runs):
    _seeded_runs(runs)
    at = page(app(), "app_pages/compare.py")
    bands = [t for t in plotly_specs(at)["compare_chart"]["data"] if t.get("fill") == "toself"]
    assert len(bands) == 3
    assert all(t["mode"] == "lines" and t["showlegend"] is False for t in bands)


def _lockstep(store: RunStore, ids: list[str]) -> None:
    for rid in ids:
        store.write_summary(rid, {**store.read_summary(rid), "lockstep": ids})


@pytest.mark.parametrize("interleaved", [True, False])
def test_cost_ratios_only_for_interleaved_runs(runs, interleaved):
    ids = [fake_run(runs, cfg, load=1.5) for cfg in three_methods().values()]
    if interleaved:
        _lockstep(runs, ids)
    at = page(app(group="g1", view="Speed"), "app_pages/live.py")
    frames = [d.value for d in at.dataframe]
    ratios = [f for f in frames if "ratio" in f.columns]
    speed = next(f for f in frames if "median step time (ms)" in f.columns)
    assert list(speed["load (1 min)"]) == [1.5, 1.5, 1.5]
    infos = " ".join(i.value for i in at.info)
    if interleaved:
        (table,) = ratios
        rows = table.set_index("ratio")
        assert rows.loc["SAM-all / SGD", "measured"] == pytest.approx(2.0)
        assert rows.loc["SAM-ON / SGD", "expected (FLOPs)"] == pytest.approx(5 / 3)
        assert rows.loc["SAM-ON / SAM-all", "expected (FLOPs)"] == pytest.approx(5 / 6)
        assert "different times" not in infos
        assert set(speed["interleaved"]) == {"with 2 other runs"}
    else:
        assert not ratios
        assert "trained at different times" in infos and "no ratio is shown" in infos
        assert set(speed["interleaved"]) == {"not interleaved"}


def test_running_runs_of_one_worker_count_as_interleaved():
    from samon_app.reader import run_infos
    from samon_app.speed import lockstep_sets

    def row(rid, state, worker=None, lockstep=None):
        return {"run_id": rid, "config": TINY.to_dict(), "meta": {},
                "status": {"state": state, "worker": worker},
                "summary": {"lockstep": lockstep} if lockstep else None}

    infos = run_infos([row("a", "running", "w1"), row("b", "running", "w1"),
                       row("c", "running", "w2"), row("d", "finished", "w1"),
                       row("e", "finished", lockstep=["e", "c"])])
    sets = sorted(sorted(s) for s in lockstep_sets(infos))
    assert sets == [["a", "b"], ["c", "e"], ["d"]]


def test_sharpness_axes_follow_the_data_and_show_a_legend():
    from samon_app.charts import sharpness_figure
    from samon_app.reader import build_run_data, run_infos

    info = run_infos([{"run_id": "r", "config": TINY.to_dict(), "meta": {},
                       "status": {"state": "running"}}])[0]
    recs = [{"kind": "sharpness", "epoch": e, "step": e, "time": 0.0, "steps": 1, "rho": 0.01,
             "value": v, "m": 32, "n": 64} for e, v in ((1, 3.0), (2, 4.5))]
    fig = sharpness_figure([info], {"r": build_run_data("r", recs)})
    lo, hi = fig.layout.yaxis.range
    assert 0 <= lo < 3.0 and 4.5 < hi < 6.0  # from the values, not a fixed -0.5..1
    assert fig.layout.showlegend is True  # even for a single run


def test_gamma_histogram_y_axis_fits_the_epochs_after_initialisation(runs):
    from samon_app.charts import gamma_animation, gamma_notes
    from samon_app.reader import build_run_data, run_infos

    one_bin = [0] * 60
    one_bin[30] = 336
    recs = [{"kind": "norm_stats", "epoch": 0, "param": "gamma", "bin_edges": EDGES,
             "counts": one_bin, "below": 0, "above": 0, "mean": 1.0, "std": 0.0, "layers": []}]
    for e in (1, 2):
        counts = hist(1.0 + 0.05 * e, n=320)
        recs.append({"kind": "norm_stats", "epoch": e, "param": "gamma", "bin_edges": EDGES,
                     "counts": counts, "below": 0, "above": 16, "mean": 1.1, "std": 0.2,
                     "layers": []})
    info = run_infos([{"run_id": "r", "config": TINY.to_dict(), "meta": {},
                       "status": {"state": "finished"}}])[0]
    data = {"r": build_run_data("r", recs)}
    fig = gamma_animation([info], data)
    top = fig.layout.yaxis.range[1]
    assert top < 50  # not fixed at 100% by epoch 0's single bin
    assert any("clipped" in a.text for a in fig.layout.annotations)
    assert "outside" in fig.data[0].name  # 16 of 336 values above the recorded range
    assert any("outside the recorded range" in n for n in gamma_notes([info], data))


def test_live_captions_and_empty_charts_say_what_is_shown(runs):
    fake_run(runs, TINY.replace(method="base"), state="cancelled", epochs_done=0)
    at = page(app(group="g1"), "app_pages/live.py")
    spec = plotly_specs(at)["live_acc_chart"]
    note = spec["layout"]["annotations"][0]["text"]
    assert "cancelled" in note and "fills in" not in note
    assert "solid lines are test" in texts(at)
    at.segmented_control(key="live_per").set_value("per step").run()
    assert "solid lines are test" not in texts(at)
    assert "train only" in texts(at)
