"""Static checks of the deployment files (Dockerfile, .dockerignore, compose.yaml, the
requirements, .ci/run): what can be checked without a Docker engine. They catch a renamed folder
the image would miss, a setting misspelt in an environment variable (which the app would reject at
start), a CMD that drifted from the README's app command, a .dockerignore that lets the run store
into the image, and a queue server (huey, Redis) coming back after issue 24 replaced it with the
database."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from support.paths import REPO as ROOT

from samon_core.catalog.datasets import DATA_DIR_ENV
from samon_core.runs.database import DATABASE_URL_ENV
from samon_core.runs.store import RUNS_DIR_ENV
from samon_core.service.settings import SETTINGS_ENV, Settings, env_name

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
    those read outside it (settings file, run store, data folder, the database's URL, which the
    run store reads when it is opened without settings)."""
    return {env_name(name) for name in Settings.model_fields} | {
        SETTINGS_ENV, RUNS_DIR_ENV, DATA_DIR_ENV, DATABASE_URL_ENV}


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
    assert "SAMON_DATABASE_URL" in known and "SAMON_MAX_QUEUED_PER_OWNER" in known
    for path in (DOCKERFILE, COMPOSE):
        for name in set(SAMON_VAR.findall(path.read_text())):
            assert name in known, f"{path.name}: {name} is no setting (settings.py)"


def test_compose_shares_image_database_and_runs(compose):
    services = compose["services"]
    app, worker, postgres = services["app"], services["worker"], services["postgres"]
    assert app["image"] == worker["image"] and app.get("build") == worker.get("build") == "."
    for svc in (app, worker):
        env = svc["environment"]
        url = env["SAMON_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://samon:${POSTGRES_PASSWORD")
        assert url.endswith("@postgres:5432/samon")
        assert "samon-runs:/app/runs" in svc["volumes"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(app["environment"]["SAMON_START_WORKERS"]) == "0"
    assert worker["command"][:4] == ["python", "-m", "samon_core", "worker"]
    assert worker["command"][4:] == ["--devices", "auto"]
    (gpus,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["driver"] == "nvidia" and gpus["count"] == "all" and "gpu" in gpus["capabilities"]
    env = postgres["environment"]
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")  # no default password
    assert env["POSTGRES_USER"] == "samon" and env["POSTGRES_DB"] == "samon"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "ports" not in postgres  # reachable from the compose network only
    assert set(compose["volumes"]) >= {"samon-runs", "samon-data", "postgres-data"}


def test_no_queue_server_is_left_in_the_deployment():
    """Issue 24: the database is the queue. huey and Redis are in no requirement, no service of
    compose.yaml and no install of .ci/run; PostgreSQL's server stays in .ci/run (the database
    tests start one) and its driver in the requirements."""
    requirements = "\n".join(
        line.split("#")[0].strip().lower()
        for name in ("requirements.txt", "requirements-dev.txt")
        for line in (ROOT / name).read_text().splitlines())
    for gone in ("huey", "redis"):
        assert not re.search(rf"^{gone}\b", requirements, re.M), f"{gone} is still required"
    assert re.search(r"^sqlalchemy\b", requirements, re.M)
    assert re.search(r"^psycopg\[binary\]", requirements, re.M)
    compose = COMPOSE.read_text().lower()
    assert "redis" not in compose and "huey" not in compose
    ci = (ROOT / ".ci" / "run").read_text()
    assert "redis" not in ci.lower() and "postgresql" in ci


def _requirement_names(path: Path) -> set[str]:
    """Normalised distribution names a requirements file installs (``-r`` files followed)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= _requirement_names(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _imported_modules(paths: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in ``paths`` (function-level imports too)."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_the_readme_install_brings_every_package_the_app_imports():
    """The README's app command installs requirements.txt: every third-party module the app and
    the library import comes from a distribution listed there (huey leaving the code and the
    file at once, a new import not forgotten). tomli: only on Python < 3.11, listed so."""
    sources = [ROOT / "app.py", *(ROOT / "app_pages").rglob("*.py"),
               *(ROOT / "samon_app").rglob("*.py"), *(ROOT / "samon_core").rglob("*.py")]
    local = {"samon_core", "samon_app", "app_pages", "app", "__future__"}
    modules = {m for m in _imported_modules(sources)
               if m not in sys.stdlib_module_names and m not in local}
    assert {"torch", "sqlalchemy", "streamlit"} <= modules  # the scan sees imports at all
    required = _requirement_names(ROOT / "requirements.txt")
    providers = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(modules):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists & required:
            missing.append(f"{module} ({', '.join(sorted(dists))})")
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_readme_and_deployment_doc_show_both_ways():
    readme = (ROOT / "README.md").read_text()
    assert "## Docker" in readme and "docker compose up" in readme and "docker run" in readme
    assert "docker run" in (ROOT / "docs" / "deployment.md").read_text()
