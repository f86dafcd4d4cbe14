"""The server's Settings: where a value comes from and which wins, strict numbers that still read
the environment's text, one formatter with RunConfig, and pydantic-settings through its public
API only (no ContextVar: the environment is an argument). The job service's use of the settings
is tested in test_jobs.py, workers_per_device in test_workers_per_device.py."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pydantic
import pytest
from pydantic_settings import InitSettingsSource

from samon_core.runs.config import RunConfig
from samon_core.service import settings as settings_module
from samon_core.service.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _no_developer_settings(clean_env):
    """No SAMON_* variable and no ./samon.toml of the developer."""


def _toml(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return {"SAMON_SETTINGS": str(path)}


# --- which source wins ---------------------------------------------------------------------


def test_arguments_win_over_the_environment_over_the_file_over_the_defaults(tmp_path):
    """The order the module docstring promises, one setting per layer, and all four at once."""
    env = _toml(tmp_path, "max_epochs = 1\nmax_queue = 1\nmax_train_subset = 1\n")
    env.update(SAMON_MAX_EPOCHS="2", SAMON_MAX_QUEUE="2")
    s = load_settings(environ=env, max_epochs=3)
    assert (s.max_epochs, s.max_queue, s.max_train_subset, s.max_model_params) == (3, 2, 1, 0)
    # each source's value also stands alone
    assert load_settings(environ=env).max_epochs == 2
    assert load_settings(environ=_toml(tmp_path, "max_epochs = 1\n")).max_epochs == 1
    assert load_settings(environ={}).max_epochs == 0


def test_a_bare_settings_reads_the_same_sources_of_this_process(tmp_path, monkeypatch):
    """Settings() (pydantic-settings' own path, settings_customise_sources) and load_settings()
    read the process's environment and file alike, text and all."""
    monkeypatch.setenv("SAMON_SETTINGS", str(tmp_path / "settings.toml"))
    (tmp_path / "settings.toml").write_text("max_queue = 4\npoll_s = 1\n")
    monkeypatch.setenv("SAMON_MAX_EPOCHS", " 7 ")
    assert Settings() == load_settings()
    assert (Settings().max_epochs, Settings().max_queue, Settings().poll_s) == (7, 4, 1.0)
    assert Settings(max_queue=5).max_queue == 5


def test_settings_and_load_settings_take_one_merge_of_the_sources(tmp_path, monkeypatch):
    """Settings() gets its values from one SettingsSources (pydantic-settings merges nothing
    else), the source load_settings reads of any mapping: the same order, and the same answer
    to where a value came from."""
    env = _toml(tmp_path, "max_epochs = 1\nmax_queue = 1\nmax_train_subset = 1\n")
    env.update(SAMON_MAX_EPOCHS="2", SAMON_MAX_QUEUE="2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings(max_epochs=3) == load_settings(environ=env, max_epochs=3)
    (source,) = Settings.settings_customise_sources(
        Settings, InitSettingsSource(Settings, {"max_epochs": 3}), None, None, None)
    assert isinstance(source, settings_module.SettingsSources)
    assert (source()["max_epochs"], source()["max_queue"], source()["max_train_subset"]) == (
        3, "2", 1)
    assert [source.where(n) for n in ("max_epochs", "max_queue", "max_train_subset", "poll_s")] \
        == ["argument", "$SAMON_MAX_QUEUE", env["SAMON_SETTINGS"], "default"]


def test_the_environment_is_an_argument_not_the_process_environment(tmp_path, monkeypatch):
    """load_settings(environ=...) reads only that mapping (names in any case, blank = unset)."""
    monkeypatch.setenv("SAMON_MAX_EPOCHS", "9")
    assert load_settings(environ={}).max_epochs == 0
    assert load_settings(environ={"samon_max_epochs": "4", "SAMON_MAX_QUEUE": "  "}).max_epochs == 4
    assert load_settings().max_epochs == 9


# --- strict numbers ------------------------------------------------------------------------

INT_CASES = [  # (where, value, what max_epochs becomes or None for refused)
    ("env", "7", 7), ("env", " 7 ", 7), ("env", "5.0", 5), ("env", "+3", 3),
    ("env", "2.5", None), ("env", "true", None), ("env", "1e3", None),
    ("toml", "7", 7), ('toml', '"7"', 7), ("toml", "5.0", None), ("toml", "true", None),
    ("arg", 7, 7), ("arg", "7", 7), ("arg", 5.0, None), ("arg", True, None), ("arg", 2.5, None),
]


@pytest.mark.parametrize(("where", "value", "expected"), INT_CASES)
@pytest.mark.parametrize("field", ["max_epochs", "lockstep_max_runs", "max_new_names_per_hour"])
def test_integers_are_strict_but_the_text_of_a_number_is_read(tmp_path, where, value, expected,
                                                             field):
    """5.0 or true for a limit is a mistake (pydantic's strict int); "7" is the text of 7."""
    if where == "env":
        call = {"environ": {f"SAMON_{field.upper()}": value}}
    elif where == "toml":
        call = {"environ": _toml(tmp_path, f"{field} = {value}\n")}
    else:
        call = {"environ": {}, field: value}
    if expected is None:
        with pytest.raises(ValueError, match=rf"setting {field} \(from .*\) must be an integer"):
            load_settings(**call)
    else:
        got = getattr(load_settings(**call), field)
        assert got == expected and type(got) is int


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3.0), (0.5, 0.5), ("0.5", 0.5), (True, None), ("true", None), (math.nan, None),
    ("inf", None),
])
def test_seconds_are_numbers_not_booleans(value, expected):
    if expected is None:
        with pytest.raises(ValueError, match=r"setting poll_s \(from argument\) must be a "):
            load_settings(environ={}, poll_s=value)
    else:
        got = load_settings(environ={}, poll_s=value).poll_s
        assert got == expected and type(got) is float


def test_every_number_setting_is_strict():
    """A new limit gets pydantic's strictness too (and with it the reading of text)."""
    for name, info in Settings.model_fields.items():
        if info.annotation in (int, float):
            assert any(isinstance(m, pydantic.Strict) for m in info.metadata), name


# --- messages: one formatter ----------------------------------------------------------------


def test_settings_and_run_configs_share_one_wording():
    with pytest.raises(ValueError) as run:
        RunConfig(epochs=0)
    with pytest.raises(ValueError) as server:
        load_settings(environ={}, lockstep_max_runs=0)
    assert str(run.value) == "RunConfig.epochs must be an integer in [1, 400]; got 0"
    assert str(server.value) == (
        "setting lockstep_max_runs (from argument) must be an integer in [1, 32]; got 0")


def test_every_bad_setting_is_named_with_its_source(tmp_path):
    env = _toml(tmp_path, "max_epochs = 2.5\nmax_epoch = 1\n")
    env["SAMON_MAX_QUEUE"] = "-1"
    with pytest.raises(ValueError) as info:
        load_settings(environ=env, poll_s=0)
    path = env["SAMON_SETTINGS"]
    assert str(info.value).splitlines() == [
        "setting max_queue (from $SAMON_MAX_QUEUE) must be an integer >= 0; got -1",
        f"setting max_epochs (from {path}) must be an integer; got 2.5",
        "setting poll_s (from argument) must be a number in (0.0, 3600.0]; got 0",
        f"unknown setting(s) (from {path}): max_epoch (did you mean: max_epoch -> max_epochs?)",
    ]


def test_a_secret_of_the_wrong_type_is_not_quoted(tmp_path):
    secret = "1234567890123"
    with pytest.raises(ValueError) as info:
        load_settings(environ=_toml(tmp_path, f"teacher_token = {secret}\n"))
    assert str(info.value).endswith("teacher_token (from " + str(tmp_path / "settings.toml")
                                    + ") must be a string or None; got (hidden)")
    assert secret not in str(info.value)


# --- pydantic-settings through its public API --------------------------------------------------


def test_settings_use_no_private_pydantic_settings_names_and_no_context_variable():
    tree = ast.parse(Path(settings_module.__file__).read_text())
    imported = [(node.module or "", alias.name) for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) for alias in node.names]
    imported += [(alias.name, "") for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names]
    assert ("contextvars", "") not in imported
    for module, name in imported:
        if module.startswith("pydantic"):
            assert module in ("pydantic", "pydantic.fields", "pydantic_settings"), module
            assert not name.startswith("_"), name
    overridden = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert not overridden & {"_read_file", "_load_env_vars", "_settings_build_values"}
