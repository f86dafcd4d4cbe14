"""A throw-away PostgreSQL server (Debian's ``postgresql`` package) on a free loopback port,
which a test can stop and start again on the same port (a database outage). Its data folder
survives a restart, like a real server's: an outage loses nothing that was committed.

PostgreSQL refuses to run as root, so under root (CI) the server runs as the ``postgres`` user
in a folder it owns, outside pytest's private (0700) temporary folders."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def _bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: Debian keeps them out of PATH."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


BINDIR = _bindir()


def why_unavailable() -> str | None:
    """None when a server can be started here, else the reason (a skip message)."""
    if BINDIR is None:
        return "PostgreSQL is not installed (Debian package 'postgresql'; .ci/run installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """``start()`` / ``stop()`` a PostgreSQL server on ``port``; ``new_database()`` gives a fresh
    database's URL (one per test, so tests never see each other's rows)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="samon-pg-"))
        self.data = self.folder / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run(["initdb", "-D", str(self.data), "-U", "samon", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])

    def _run(self, argv: list[str], timeout: float = 60) -> None:
        argv = [str(BINDIR / argv[0]), *argv[1:]]
        if self._as_postgres:
            argv = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in argv)]
        subprocess.run(argv, check=True, timeout=timeout, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://samon@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections; a failure says why (the last
        lines of the server's log)."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.folder / "log"
        try:
            self._run(["pg_ctl", "-D", str(self.data), "-l", str(log), "-w",
                       "-t", str(int(timeout)), "-o", options, "start"], timeout=timeout + 10)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
            raise RuntimeError(f"PostgreSQL did not start: {exc}; log: {tail}") from None

    def stop(self) -> None:
        # immediate: an outage, not a shutdown (clients get no goodbye)
        self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=samon dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                shutil.rmtree(self.folder)
                return
            except OSError:
                time.sleep(0.2)
