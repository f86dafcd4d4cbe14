"""python -m samon_core: run, list, show, export, presets, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.teacher import TEACHER_TOKEN

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


# ---------------------------------------------------------------------------------------------
# owner keys and the teacher on the command line
# ---------------------------------------------------------------------------------------------

def _queued_run(runs: str, owner: str, key: str | None = None) -> str:
    from support.configs import tiny_config

    from samon_core import service
    from samon_core.service.settings import load_settings

    return service.submit(tiny_config(), owner=owner, owner_key=key, store=RunStore(runs),
                          settings=load_settings(environ={}))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("samon: error:") and err.count("\n") == 1, err
    return err


def test_owner_register_prints_a_key_that_cancels(tmp_path, capsys, clean_env):
    runs = str(tmp_path / "runs")
    assert main(["owner", "register", "alice b", "--runs-dir", runs]) == 0
    out = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    key = out["key"]
    # the name as registered, in normal form: a blank inside becomes '-'
    assert out["owner"] == "alice-b" and out["link"] == f"?owner=alice-b&key={key}"
    rid = _queued_run(runs, "alice b", key)
    assert main(["owner", "register", "alice b", "--runs-dir", runs]) == 2
    assert "already has an owner key" in _error_line(capsys)
    bob = RunStore(runs).register_owner("bob")
    for wrong in (bob, "not-a-key-at-all-but-long", "tooshort"):
        assert main(["cancel", rid, "--owner-key", wrong, "--runs-dir", runs]) == 2
        assert wrong not in _error_line(capsys)
    assert main(["cancel", rid, "--runs-dir", runs]) == 2
    assert "needs --owner-key" in _error_line(capsys)
    assert RunStore(runs).read_status(rid)["state"] == "queued"
    assert main(["cancel", rid, "--owner-key", key, "--runs-dir", runs]) == 0
    assert capsys.readouterr().out.strip() == f"{rid}: cancelled"


def test_the_teacher_token_comes_from_a_file_or_the_settings(tmp_path, capsys, clean_env):
    runs = str(tmp_path / "runs")
    rid, other = _queued_run(runs, "carol"), _queued_run(runs, "dan")
    token_file = tmp_path / "token"
    token_file.write_text(TEACHER_TOKEN + "\n")
    assert main(["cancel", rid, "--teacher-token-file", str(token_file), "--runs-dir", runs]) == 2
    assert "no teacher token" in _error_line(capsys)  # none configured on this server
    assert main(["cancel", rid, "--owner", "teacher", "--runs-dir", runs]) == 2
    assert "needs the teacher token" in _error_line(capsys)
    clean_env.setenv("SAMON_TEACHER_TOKEN", TEACHER_TOKEN)
    wrong = tmp_path / "wrong"
    wrong.write_text("a-wrong-teacher-token\n")
    assert main(["cancel", rid, "--teacher-token-file", str(wrong), "--runs-dir", runs]) == 2
    err = _error_line(capsys)
    assert "teacher token is wrong" in err and "a-wrong" not in err and TEACHER_TOKEN not in err
    assert main(["cancel", rid, "--teacher-token-file", str(token_file), "--runs-dir", runs]) == 0
    assert main(["cancel", other, "--owner", "teacher", "--runs-dir", runs]) == 0
    assert {RunStore(runs).read_status(r)["state"] for r in (rid, other)} == {"cancelled"}


def test_run_under_a_registered_name_needs_its_key(tmp_path, capsys, clean_env):
    runs = str(tmp_path / "runs")
    RunStore(runs).register_owner("alice")
    for extra in ([], ["--owner-key", RunStore(runs).register_owner("bob")]):
        argv = ["run", "--preset", "cpu-quick-demo", "--owner", "alice", "--runs-dir", runs,
                *extra]
        assert main(argv) == 2
        assert "alice" in _error_line(capsys)
    assert main(["claim", "run", "accuracy", "--owner", "teacher", "--runs-dir", runs]) == 2
    assert "needs the teacher token" in _error_line(capsys)
    assert RunStore(runs).run_ids() == []  # refused before any run folder


@pytest.mark.parametrize("argv", [
    [], ["run"], ["list"], ["show"], ["export"], ["presets"], ["landscape"], ["worker"],
    ["claim", "list"], ["claim", "run"], ["claim", "verdict"], ["owner", "register"], ["cancel"],
])
def test_every_command_prints_its_help(argv, capsys):
    """argparse %-formats help texts: a '%' in a catalog text must not crash --help."""
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_a_cancel_stops_a_run_the_cli_trains_itself(tmp_path, monkeypatch):
    """`samon run` trains in its own process, not a worker: a cancel (the column the app and
    `samon cancel` set) must stop it all the same. Here the cancel comes as the run starts."""
    from samon_core.service import scheduler

    claim = scheduler.claim_runs

    def claim_and_cancel(engine, run_ids, *args, **kwargs):
        mine = claim(engine, run_ids, *args, **kwargs)
        for run_id in mine:
            scheduler.request_cancel(engine, run_id)
        return mine

    monkeypatch.setattr(scheduler, "claim_runs", claim_and_cancel)
    cfg = tmp_path / "cfg.json"
    RunConfig(model="tiny_resnet", dataset="synthetic", method="sam", scope="norm").save(cfg)
    runs = str(tmp_path / "runs")
    main(["run", "--config", str(cfg), "--runs-dir", runs, "--progress", "none", *TINY_SET,
          "--set", "epochs=3"])
    store = RunStore(runs)
    (run_id,) = store.run_ids()
    assert store.read_status(run_id)["state"] == "cancelled"
