"""Static checks of the deployment files (Dockerfile, .dockerignore, compose.yaml): what can be
checked without a Docker engine. They catch a renamed folder the image would miss, a setting
misspelt in an environment variable (which the app would reject at start), a CMD that drifted
from the README's app command and a .dockerignore that lets the run store into the image."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from samon_core.runs.store import RUNS_DIR_ENV
from samon_core.service.preflight import DATA_DIR_ENV
from samon_core.service.settings import SETTINGS_ENV, Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
SAMON_VAR = re.compile(r"\bSAMON_[A-Z0-9_]+\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continuations joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    """The argument list of an exec-form instruction (``["a", "b"]``); shell form is split."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
               for p in patterns)


@pytest.fixture(scope="module")
def docker() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def known_variables() -> set[str]:
    """Every SAMON_* variable the code reads: the settings (from the Settings model itself) and
    the three read outside it (settings file, run store, data folder)."""
    return {env_name(name) for name in Settings.model_fields} | {
        SETTINGS_ENV, RUNS_DIR_ENV, DATA_DIR_ENV}


def test_every_copy_source_exists_and_is_not_ignored(docker):
    patterns = ignore_patterns()
    copies = [args for word, args in docker if word == "COPY"]
    assert copies
    for args in copies:
        parts = [p for p in exec_form(args) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not ignored(source.removeprefix("./").rstrip("/"), patterns), (
                f"COPY {source}: excluded by .dockerignore")
    copied = {p.rstrip("/") for args in copies for p in exec_form(args)[:-1]}
    for needed in ("app.py", "app_pages", "samon_app", "samon_core", ".streamlit",
                   "pyproject.toml", "README.md", "requirements.txt"):
        assert needed in copied, f"the image lacks {needed}"


def test_cmd_is_the_readme_app_command(docker):
    cmd = exec_form([args for word, args in docker if word == "CMD"][-1])
    readme_scripts = set(re.findall(r"streamlit run (\S+\.py)", (ROOT / "README.md").read_text()))
    assert readme_scripts, "the README names no `streamlit run` command"
    assert cmd[:2] == ["streamlit", "run"] and cmd[2] in readme_scripts, cmd
    assert "--server.port=8501" in cmd and "--server.address=0.0.0.0" in cmd


def test_image_runs_unprivileged_with_health_port_and_volumes(docker):
    words = dict(docker)  # the last of each instruction
    assert words["FROM"].startswith("python:3.11-slim")
    assert words["USER"] not in ("root", "0")
    assert "8501" in words["EXPOSE"].split()
    assert "/_stcore/health" in words["HEALTHCHECK"]
    env = dict(re.findall(r"(SAMON_[A-Z_]+)=(\S+)", " ".join(
        args for word, args in docker if word == "ENV")))
    volumes = exec_form(words["VOLUME"])
    assert env[RUNS_DIR_ENV] in volumes and env[DATA_DIR_ENV] in volumes
    runs = [args for word, args in docker if word == "RUN"]
    assert any("-r requirements.txt" in r for r in runs)
    assert any("pip install --no-deps" in r for r in runs)


def test_dockerignore_keeps_data_and_environments_out():
    patterns = ignore_patterns()
    for path in ("runs", "data", ".venv", ".git", "bench/out", "samon/__pycache__"):
        assert ignored(path, patterns), f".dockerignore lets {path} into the image"
    for path in ("samon_core", "app.py", "README.md", ".streamlit"):
        assert not ignored(path, patterns), f".dockerignore drops {path}"


def test_every_samon_variable_is_a_setting(compose):
    known = known_variables()
    assert "SAMON_QUEUE" in known and "SAMON_FAIR_QUEUE" in known
    for path in (DOCKERFILE, COMPOSE):
        for name in set(SAMON_VAR.findall(path.read_text())):
            assert name in known, f"{path.name}: {name} is no setting (settings.py)"


def test_compose_shares_image_queue_and_runs(compose):
    services = compose["services"]
    app, worker, redis = services["app"], services["worker"], services["redis"]
    assert app["image"] == worker["image"] and app.get("build") == worker.get("build") == "."
    for svc in (app, worker):
        env = svc["environment"]
        assert env["SAMON_QUEUE"] == "redis"
        assert "${REDIS_PASSWORD" in env["SAMON_REDIS_URL"] and "@redis:6379" in env[
            "SAMON_REDIS_URL"]
        assert "samon-runs:/app/runs" in svc["volumes"]
    assert str(app["environment"]["SAMON_START_WORKERS"]) == "0"
    assert worker["command"][:4] == ["python", "-m", "samon_core", "worker"]
    assert worker["command"][4:] == ["--devices", "auto"]
    (gpus,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["driver"] == "nvidia" and gpus["count"] == "all" and "gpu" in gpus["capabilities"]
    command = " ".join(redis["command"])
    assert "--requirepass ${REDIS_PASSWORD" in command and "--appendonly yes" in command
    assert "ports" not in redis  # reachable from the compose network only
    assert set(compose["volumes"]) >= {"samon-runs", "samon-data", "redis-data"}


def test_readme_and_deployment_doc_show_both_ways():
    readme = (ROOT / "README.md").read_text()
    assert "## Docker" in readme and "docker compose up" in readme and "docker run" in readme
    assert "docker run" in (ROOT / "docs" / "deployment.md").read_text()
