"""python -m samon_core: run, list, show, export, presets, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from samon_core.cli import main
from samon_core.runs.config import RunConfig
from samon_core.runs.presets import list_presets
from samon_core.runs.store import RunStore

TINY_SET = [
    "--set",
    "train_subset=256",
    "--set",
    "test_subset=128",
    "--set",
    "epochs=1",
    "--set",
    "batch_size=64",
    "--set",
    "sharpness_samples=64",
    "--set",
    "sharpness_m=64",
    "--set",
    "sharpness_multi_steps=0",
]


@pytest.mark.slow
def test_run_list_show_export(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    RunConfig(model="tiny_resnet", dataset="synthetic", method="sam", scope="norm").save(cfg)
    runs = str(tmp_path / "runs")
    assert (
        main(["run", "--config", str(cfg), "--runs-dir", runs, "--progress", "none", *TINY_SET])
        == 0
    )
    out = capsys.readouterr()
    assert "final test accuracy" in out.out
    store = RunStore(runs)
    (run_id,) = store.run_ids()
    assert store.read_status(run_id)["state"] == "finished"
    assert store.read_config(run_id).epochs == 1  # the override was applied

    assert main(["list", "--runs-dir", runs]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["show", run_id, "--runs-dir", runs]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"]["state"] == "finished" and shown["config"]["scope"] == "norm"

    assert main(["export", run_id, "--runs-dir", runs, "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("epoch,") and len(csv) == 2
    dest = tmp_path / "m.json"
    assert (
        main(
            [
                "export",
                run_id,
                "--runs-dir",
                runs,
                "--format",
                "json",
                "--kind",
                "all",
                "-o",
                str(dest),
            ]
        )
        == 0
    )
    exported = json.loads(dest.read_text())
    assert {r["kind"] for r in exported["records"]} >= {"epoch", "step", "norm_stats", "sharpness"}


@pytest.mark.slow
def test_run_preset_with_method_filter(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert (
        main(
            [
                "run",
                "--preset",
                "cpu-quick-demo",
                "--method",
                "SAM-ON",
                "--runs-dir",
                runs,
                "--progress",
                "none",
                *TINY_SET,
            ]
        )
        == 0
    )
    store = RunStore(runs)
    (run_id,) = store.run_ids()
    assert store.read_meta(run_id)["preset"] == "cpu-quick-demo"
    assert store.read_config(run_id).scope == "norm"


def test_presets_command_lists_all(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in list_presets():
        assert name in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "--preset", "nope"], "unknown preset"),
        (["run", "--preset", "cpu-quick-demo", "--set", "epochs=0"], "epochs"),
        (["run", "--preset", "cpu-quick-demo", "--set", "bogus=1"], "bogus"),
        (["run", "--preset", "cpu-quick-demo", "--set", "lr"], "key=value"),
        (["run", "--preset", "cpu-quick-demo", "--method", "Adam"], "no method"),
        (["run", "--config", "/does/not/exist.json"], "does not exist"),
        (["show", "../etc"], "run id"),
        (["show", "nosuchrun"], "no run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    assert main([*argv, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samon: error:") and needle in err and "Traceback" not in err


def test_module_entry_point_exit_code(tmp_path):
    env = {**os.environ, "SAMON_RUNS_DIR": str(tmp_path)}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "samon_core",
            "run",
            "--preset",
            "cpu-quick-demo",
            "--set",
            "rho=-1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2 and "rho" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "samon_core", "run", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0 and "sharpness_every" in p.stdout and "--set" in p.stdout
