"""Engine and sessions. The app never creates tables: Alembic owns the schema.

Every database call from a request runs in a worker thread under a deadline (`call`): a
PostgreSQL that stops answering without closing its sockets (a stopped process, a frozen
VM, a network partition) otherwise holds the request for as long as the stall lasts, since
the kernel still acknowledges the bytes and no TCP timeout fires. Past the deadline the
request gets 503 `database_unavailable` and the thread is left to finish (or fail) on its
own when the server comes back. New connections have a connect timeout, the pool a
checkout timeout, and PostgreSQL a statement timeout, all the same deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, text

from app.domain import errors

T = TypeVar("T")
log = logging.getLogger("app.db")
# Database calls get threads of their own: calls stuck on a stalled server must not take the
# threads that other work (JSON parsing, the readiness check's siblings) runs on. More than the
# pool's 20 connections, so a stall is met by the pool's own timeout, not by a thread shortage.
_EXECUTOR = ThreadPoolExecutor(32, thread_name_prefix="db")


def make_engine(url: str, timeout_s: float | None = None) -> Engine:
    """`timeout_s` (the server passes FACEAPI_DATABASE_TIMEOUT_S): the deadline of `call` and the
    connect, pool and statement timeouts. None (command-line tools, benchmarks, bulk loads):
    none of them."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        engine.info_timeout_s = timeout_s  # type: ignore[attr-defined]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            engine.info_shm = url.removeprefix("sqlite:///").split("?")[0] + "-shm"  # type: ignore[attr-defined]
        return engine
    # libpq's connect_timeout is whole seconds, at least 2; statement_timeout is the server's own
    # limit on a query that runs too long (a stalled server cannot apply it: `call` does)
    if timeout_s is None:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    else:
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_timeout=timeout_s,
            connect_args={"connect_timeout": max(2, round(timeout_s)),
                          "options": f"-c statement_timeout={int(timeout_s * 1000)}"})
    engine.info_timeout_s = timeout_s  # type: ignore[attr-defined]
    return engine


def timeout_of(engine: Engine) -> float | None:
    return getattr(engine, "info_timeout_s", None)


_last_shm_warning = [0.0]


def check_usable(engine: Engine) -> None:
    """503 `database_unavailable` when SQLite's shared-memory file (`-shm`) cannot be written.

    SQLite maps the `-shm` file of a WAL database into memory and writes to it on every
    transaction, reads included. When the file stops taking writes under a running process
    (made immutable; a filesystem remounted read-only), such a write is a SIGBUS: the
    process died at once, with no answer and no log line. Checked before every database
    call (one access(2), microseconds); the race with a change between the check and the
    call is left to the fatal-signal report (faulthandler, `python -m app serve`)."""
    shm = getattr(engine, "info_shm", None)
    if shm is None or os.access(shm, os.W_OK) or not os.path.exists(shm):
        return
    now = time.monotonic()
    if now - _last_shm_warning[0] > 60:
        _last_shm_warning[0] = now
        log.error("the SQLite shared-memory file %s is not writable (immutable, or a read-only "
                  "filesystem): every database call is refused until it is", shm)
    raise errors.DatabaseUnavailable("The database cannot be used: its files cannot be written; "
                                     "the operator has been told (server log).")


async def call(engine: Engine, fn: Callable[..., T], *args) -> T:
    """`fn(*args)` in a database thread; 503 `database_unavailable` past the engine's deadline."""
    check_usable(engine)
    seconds = timeout_of(engine)
    work = asyncio.get_running_loop().run_in_executor(_EXECUTOR, fn, *args)
    if seconds is None:
        return await asyncio.shield(work)
    try:
        return await asyncio.wait_for(asyncio.shield(work), seconds)
    except TimeoutError:
        work.add_done_callback(_forget)
        log.warning("a database call took more than %g s; answered 503", seconds)
        raise errors.DatabaseUnavailable(
            f"The database did not answer within {seconds:g} s; retry shortly.") from None


def _forget(work: asyncio.Future) -> None:
    if not work.cancelled():
        work.exception()  # retrieved, so a late failure is not reported as never retrieved


# Errors that say the database refuses writes: a full or read-only disk, a read-only database
# or replica. They persist until the operator acts, unlike a lost connection.
_SQLITE_UNWRITABLE = {"SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_IOERR_TRUNCATE",
                      "SQLITE_IOERR_DIR_FSYNC", "SQLITE_IOERR_SHMSIZE", "SQLITE_IOERR_SHMMAP"}
_PG_UNWRITABLE = {"53100", "25006"}  # disk_full, read_only_sql_transaction


def refuses_writes(exc: BaseException) -> str | None:
    """The driver's name for the error when it means "the database cannot store this", else None."""
    orig = getattr(exc, "orig", exc)
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:
        return name if name.startswith("SQLITE_READONLY") or name in _SQLITE_UNWRITABLE else None
    state = getattr(orig, "sqlstate", None)
    return f"SQLSTATE {state}" if state in _PG_UNWRITABLE else None


def ping(engine: Engine) -> bool:
    try:
        check_usable(engine)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def ping_within(engine: Engine) -> bool:
    """`ping` under the deadline: a stalled server is "not reachable", not a hung readiness probe."""
    try:
        return await call(engine, ping, engine)
    except errors.DatabaseUnavailable:
        return False
