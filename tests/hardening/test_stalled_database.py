"""A PostgreSQL that stops answering without closing its sockets (every process of it
stopped with SIGSTOP, as a frozen VM or a partition looks from outside): the kernel still
acknowledges bytes, so no TCP timeout fires. Against the real server process and a real
PostgreSQL, readiness, reads and verify must answer 503 within the database deadline
instead of hanging for the whole stall, and everything works again once it resumes."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.conftest import add_keys, yale_bytes
from tests.hardening.serving import serve

DEADLINE_S = 2  # FACEAPI_DATABASE_TIMEOUT_S of this server


@pytest.fixture
def own_postgres():
    from app.core.migrate import upgrade
    from tests.integration.pgserver import PostgresServer

    server = PostgresServer.start()
    try:
        url = server.create_database("stall")
        upgrade(url)
        yield server, url
    finally:
        server.stop()


def _postgres_processes(server) -> list[psutil.Process]:
    pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


def test_a_stopped_postgresql_gives_503_within_the_deadline_and_recovers(own_postgres, tmp_path):
    server, url = own_postgres
    _, client_key = add_keys(url)
    key = {"X-API-Key": client_key}
    photo = yale_bytes("subject01.normal")
    with serve(tmp_path, url, database_timeout_s=str(DEADLINE_S)) as served, \
            httpx.Client(base_url=served.base_url, timeout=60) as http:
        assert http.get("/persons", headers=key).status_code == 200
        calls = {
            "ready": lambda: http.get("/health/ready"),
            "persons": lambda: http.get("/persons", headers=key),
            "verify": lambda: http.post("/verify", data={"person_id": "p1"},
                                        files={"image": ("p.png", photo)}, headers=key),
        }
        stopped = _postgres_processes(server)
        for p in stopped:
            os.kill(p.pid, signal.SIGSTOP)
        try:
            def timed(name):
                t0 = time.monotonic()
                try:
                    r = calls[name]()
                    return name, r.status_code, r.json(), time.monotonic() - t0
                except httpx.TimeoutException:
                    return name, "no answer in 60 s", None, time.monotonic() - t0

            with ThreadPoolExecutor(len(calls)) as pool:
                answers = list(pool.map(timed, calls))
            again = [timed(name) for name in calls]  # with the first calls' threads still stuck
        finally:
            for p in stopped:
                os.kill(p.pid, signal.SIGCONT)
        print("time to 503 with PostgreSQL stopped:",
              [(name, round(s, 2)) for name, _, _, s in answers + again])
        for name, status, body, _ in answers + again:
            assert status == 503, (name, status, body)
            if name == "ready":
                assert body["checks"]["database"] is False, body
            else:
                assert body["code"] == "database_unavailable" and "Traceback" not in str(body), body
        deadline = time.monotonic() + 60
        while http.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.2)
        assert http.get("/persons", headers=key).status_code == 200
        assert "Traceback" not in served.log()
