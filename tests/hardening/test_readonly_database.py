"""A SQLite database that stops taking writes under the running server process (its files
made immutable with `chattr +i`, which binds root too; `chmod` does not): reads go on,
writes are refused with a clear, non-transient answer, and an unwritable shared-memory
file (`-shm`, which SQLite maps into memory) is answered 503 and logged instead of killing
the process with SIGBUS."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes
from tests.hardening.serving import serve


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@contextlib.contextmanager
def immutable(*paths: Path):
    try:
        _chattr("+i", *paths)
    except (OSError, subprocess.CalledProcessError) as exc:  # no chattr, not root, or no support
        pytest.skip(f"cannot make files immutable here ({exc}); the test needs root and ext4/xfs")
    try:
        yield
    finally:
        _chattr("-i", *paths)


def test_a_read_only_database_still_answers_reads(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    admin_key, _ = add_keys(url)
    _, reader_key = add_keys(url)  # first used once the database is read-only: its last use cannot be written
    db = Path(url.removeprefix("sqlite:///"))
    with serve(tmp_path, url) as served, httpx.Client(base_url=served.base_url, timeout=60) as http:
        r = http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                      files={"image": ("a.png", yale_bytes("subject01.normal"))})
        assert r.status_code == 201, r.text
        with immutable(db, db.with_name(db.name + "-wal")):
            reads = [http.get("/persons", headers={"X-API-Key": reader_key}),
                     http.get("/persons/s1", headers={"X-API-Key": reader_key}),
                     http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": reader_key},
                               files={"image": ("b.png", yale_bytes("subject01.happy"))})]
            write = http.post("/enroll", data={"person_id": "s2"}, headers={"X-API-Key": admin_key},
                              files={"image": ("c.png", yale_bytes("subject02.normal"))})
        assert served.proc.poll() is None, served.log()
    assert [r.status_code for r in reads] == [200, 200, 200], [r.text[:300] for r in reads]
    assert reads[2].json()["match"] is True
    assert write.status_code == 507 and write.json()["code"] == "storage_unwritable", write.text
    assert "retry-after" not in write.headers and "Traceback" not in write.text


def test_an_unwritable_shared_memory_file_is_503_and_logged_not_a_sigbus(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    admin_key, client_key = add_keys(url)
    db = Path(url.removeprefix("sqlite:///"))
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    with serve(tmp_path, url) as served, httpx.Client(base_url=served.base_url, timeout=60) as http:
        r = http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                      files={"image": ("a.png", yale_bytes("subject01.normal"))})
        assert r.status_code == 201, r.text
        assert all(f.exists() for f in files)
        # What made the probe's server die: the log fully checkpointed, so the next write
        # transaction restarts it by writing to the -shm mapping, and its pages written back
        # to disk, so that write faults into the filesystem, which refuses it: SIGBUS.
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(FULL)")
        os.sync()
        answers = []
        with immutable(*files):
            for _ in range(10):
                try:
                    answers += [http.get("/persons", headers={"X-API-Key": client_key}).status_code,
                                http.get("/health/ready").status_code,
                                http.delete("/persons/s1", headers={"X-API-Key": admin_key}).status_code,
                                http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": client_key},
                                          files={"image": ("b.png", yale_bytes("subject01.happy"))}).status_code]
                except httpx.TransportError as exc:
                    answers.append(type(exc).__name__)
            exit_code = served.proc.poll()
        log = served.log()
        after = http.get("/persons", headers={"X-API-Key": client_key}).status_code if exit_code is None else None
    assert exit_code is None, f"the server died (exit {exit_code}); answers {answers}\n{log[-2000:]}"
    assert set(answers) == {503}, answers
    assert "shared-memory file" in log and "not writable" in log
    assert after == 200  # writable again: served again, no restart
    assert http_ok_after_all(url)


def http_ok_after_all(url: str) -> bool:
    """The person the refused DELETEs named is still there: nothing was half-done."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT count(*) FROM persons WHERE person_id = 's1'").fetchone()[0] == 1


def test_a_fatal_signal_in_the_server_process_is_reported_on_its_stderr():
    """A SIGBUS that still gets through (the file changing between the check and the call) is
    reported, with the Python stacks, on the real stderr: the stderr filter's thread dies with
    the process and could not pass it on."""
    import sys

    script = ("from app.cli.quiet import silence_third_party_noise; silence_third_party_noise()\n"
              "import os, signal; os.kill(os.getpid(), signal.SIGBUS)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Fatal Python error: Bus error" in out.stderr, out.stderr
