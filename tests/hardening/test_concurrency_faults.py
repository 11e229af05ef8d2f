"""Concurrency and faults: nothing lost, nothing phantom, no half-written person.

Requests go to a real uvicorn server on 127.0.0.1 (tests/hardening/conftest.py) from many
threads at once, on SQLite and on the session's real PostgreSQL (the `database_url`
fixture). The database-outage test starts its own PostgreSQL in a dedicated temp dir and
stops it under the running service. The model parts are the API-shape fakes.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from tests.hardening.conftest import live_app


def photo(seed: int) -> bytes:
    """A distinct image per seed (the fake embedder turns distinct pixels into distinct vectors)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def enroll(http: httpx.Client, live, pid: str, seed: int, replace: bool = False) -> httpx.Response:
    return http.post(live.base_url + "/enroll", data={"person_id": pid, "replace": str(replace).lower()},
                     files={"image": ("p.png", photo(seed))}, headers=live.admin)


def all_persons(http, live) -> set[str]:
    r = http.get(live.base_url + "/persons", params={"limit": 500}, headers=live.client)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == len(r.json()["items"])
    return {p["person_id"] for p in r.json()["items"]}


def identified(http, live, seed: int = 10_000) -> set[str]:
    r = http.post(live.base_url + "/identify", data={"top_k": "100"},
                  files={"image": ("q.png", photo(seed))}, headers=live.client)
    assert r.status_code == 200, r.text
    return {c["person_id"] for c in r.json()["candidates"]}


# Correctness under concurrency, not load shedding (tests/hardening/test_limits.py): room in
# detection for every request these tests send at once, however slow the machine is.
ROOMY = {"detect_queue_max": 1000}


def test_50_concurrent_enrolls_of_one_person(database_url):
    with live_app(database_url, **ROOMY) as live, httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as http:
        barrier = threading.Barrier(50)

        def one(i: int) -> httpx.Response:
            barrier.wait()
            return enroll(http, live, "same-person", i)

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 49, statuses
        assert all(r.json()["code"] == "person_exists" for r in responses if r.status_code == 409)
        assert all_persons(http, live) == {"same-person"}
        assert identified(http, live) == {"same-person"}
        with create_engine(database_url).connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM persons")).scalar() == 1
        # the stored embedding is the winner's: verifying with the winner's photo is an exact match
        winner = next(i for i, r in enumerate(responses) if r.status_code == 201)
        v = http.post(live.base_url + "/verify", data={"person_id": "same-person"},
                      files={"image": ("p.png", photo(winner))}, headers=live.client).json()
        assert v["distance"] < 1e-5, v


def test_enroll_delete_identify_race(database_url):
    """Owned ids: each worker enrolls/re-enrolls/deletes its own ids in a random order, so the
    final state is known exactly. Shared ids: several workers fight over them at once.
    Meanwhile identify and list run non-stop; nothing they see may be a phantom."""
    owned = {w: [f"w{w}-p{i}" for i in range(4)] for w in range(6)}
    shared = [f"shared-{i}" for i in range(3)]
    ever_enrolled: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    seen_by_readers: set[str] = set()
    errors: list[str] = []

    with live_app(database_url, **ROOMY) as live, httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as http:
        # every id that will ever be enrolled is known up front; anything else seen is a phantom
        universe = set(shared) | {p for ids in owned.values() for p in ids}

        def owner(w: int) -> set[str]:
            rnd = random.Random(w)
            present: set[str] = set()
            for step in range(30):
                pid = rnd.choice(owned[w])
                if pid in present and rnd.random() < 0.5:
                    r = http.delete(f"{live.base_url}/persons/{pid}", headers=live.admin)
                    if r.status_code != 204:
                        errors.append(f"delete {pid}: {r.status_code} {r.text}")
                    present.discard(pid)
                else:
                    r = enroll(http, live, pid, w * 1000 + step, replace=pid in present)
                    if r.status_code != 201:
                        errors.append(f"enroll {pid}: {r.status_code} {r.text}")
                    present.add(pid)
                    with lock:
                        ever_enrolled.add(pid)
            return present

        def fighter(f: int) -> None:
            rnd = random.Random(100 + f)
            for step in range(30):
                pid = rnd.choice(shared)
                if rnd.random() < 0.4:
                    r = http.delete(f"{live.base_url}/persons/{pid}", headers=live.admin)
                    ok = r.status_code in (204, 404)
                else:
                    r = enroll(http, live, pid, 50_000 + f * 1000 + step, replace=rnd.random() < 0.5)
                    ok = r.status_code in (201, 409)
                    if r.status_code == 201:
                        with lock:
                            ever_enrolled.add(pid)
                if not ok:
                    errors.append(f"{pid}: {r.status_code} {r.text}")

        def reader() -> None:
            while not stop.is_set():
                try:
                    got = identified(http, live) | all_persons(http, live)
                except AssertionError as exc:
                    errors.append(f"reader: {exc}")
                    continue
                seen_by_readers.update(got)

        with ThreadPoolExecutor(16) as pool:
            readers = [pool.submit(reader) for _ in range(3)]
            fighters = [pool.submit(fighter, f) for f in range(4)]
            owners = {w: pool.submit(owner, w) for w in owned}
            expected = {p for w, fut in owners.items() for p in fut.result()}
            for fut in fighters:
                fut.result()
            stop.set()
            for fut in readers:
                fut.result()

        assert not errors, errors[:5]
        assert seen_by_readers <= universe and seen_by_readers <= ever_enrolled, \
            seen_by_readers - ever_enrolled
        final = all_persons(http, live)
        # owned ids: exactly what their owners left (nothing lost, nothing phantom)
        assert final - set(shared) == expected
        # the search side agrees with the database, shared ids included
        assert identified(http, live) == final
        for pid in universe:
            status = http.get(f"{live.base_url}/persons/{pid}", headers=live.client).status_code
            assert status == (200 if pid in final else 404), pid


# --- a crash between embedding and commit ------------------------------------------------------

def test_failure_between_embedding_and_commit_leaves_nothing(database_url):
    """The INSERT has run inside the transaction (after_flush) when the failure strikes: the
    person must not exist afterwards, in the database or in the search index."""
    from sqlalchemy import event

    with live_app(database_url) as live:
        store = live.runtime.store
        with httpx.Client(timeout=60) as http:
            assert enroll(http, live, "before", 1).status_code == 201

            def crash(session, _ctx):
                raise RuntimeError("simulated crash between embedding and commit")

            event.listen(store.sessions, "after_flush", crash)
            try:
                r = enroll(http, live, "half", 2)
            finally:
                event.remove(store.sessions, "after_flush", crash)
            assert r.status_code == 500 and r.json()["code"] == "internal_error"
            assert "simulated" not in r.text and "Traceback" not in r.text
        with httpx.Client(timeout=60) as http:  # uvicorn drops the connection after an unhandled error
            assert http.get(live.base_url + "/persons/half", headers=live.client).status_code == 404
            assert all_persons(http, live) == {"before"} == identified(http, live)
            assert enroll(http, live, "half", 2).status_code == 201  # not a 409: nothing was left behind


CRASHING_CHILD = textwrap.dedent("""
    import io, os, sys
    import numpy as np
    from PIL import Image
    from sqlalchemy import event
    from fastapi.testclient import TestClient
    from app.core.config import Settings
    from app.main import create_app
    from tests.conftest import FakeDetector, FakeEmbedder, wait_ready
    url, key = sys.argv[1], sys.argv[2]
    app = create_app(Settings(database_url=url), embedder=FakeEmbedder(), detector=FakeDetector())
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (48, 64, 3), np.uint8)).save(buf, "PNG")
    with TestClient(app) as client:
        wait_ready(client)
        def die(session, ctx):
            os._exit(9)  # the process dies with the INSERT sent but not committed
        event.listen(app.state.runtime.store.sessions, "after_flush", die)
        client.post("/enroll", data={"person_id": "victim"}, files={"image": ("p.png", buf.getvalue())},
                    headers={"X-API-Key": key})
    sys.exit(0)
""")


def test_process_killed_between_embedding_and_commit(database_url):
    from tests.hardening.conftest import add_keys

    admin_key, _ = add_keys(database_url)
    child = subprocess.run([sys.executable, "-c", CRASHING_CHILD, database_url, admin_key],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 9, child.stderr[-2000:]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM persons")).scalar() == 0
        if database_url.startswith("sqlite"):
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engine.dispose()
    with live_app(database_url) as live, httpx.Client(timeout=60) as http:
        assert all_persons(http, live) == set() == identified(http, live)
        assert enroll(http, live, "victim", 7).status_code == 201


# --- the database goes away and comes back ------------------------------------------------------

@pytest.fixture
def own_postgres():
    """A PostgreSQL of this test's own (stopped and started under the service),
    durable: an immediate stop is a crash, and committed data must survive it."""
    from app.core.migrate import upgrade
    from tests.integration.pgserver import PostgresServer

    server = PostgresServer.start(DURABLE)
    if server._fallback is not None:
        server.stop()
        pytest.skip("needs the unprivileged pg_ctl path to stop and restart the server")
    try:
        url = server.create_database("outage")
        upgrade(url)
        yield server, url
    finally:
        server.stop()


DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def _pg_ctl(server, *args: str) -> None:
    server._run("pg_ctl", "-D", str(server.pgdata), "-w", "-t", "60", *args)


def test_database_outage_gives_503_and_recovers_without_restart(own_postgres):
    server, url = own_postgres
    opts = " ".join(f"-c {k}={v}" for k, v in DURABLE.items())
    with live_app(url) as live, httpx.Client(timeout=30) as http:
        for i in range(3):
            assert enroll(http, live, f"p{i}", i).status_code == 201

        _pg_ctl(server, "-m", "immediate", "stop")  # like a crash: no goodbye to clients
        started = time.monotonic()
        r = http.get(live.base_url + "/health/ready")
        assert r.status_code == 503 and r.json()["checks"]["database"] is False
        assert http.get(live.base_url + "/health/live").status_code == 200
        calls = {
            "list": lambda: http.get(live.base_url + "/persons", headers=live.client),
            "get": lambda: http.get(live.base_url + "/persons/p0", headers=live.client),
            "delete": lambda: http.delete(live.base_url + "/persons/p1", headers=live.admin),
            "enroll": lambda: enroll(http, live, "p9", 9),
            "verify": lambda: http.post(live.base_url + "/verify", data={"person_id": "p0"},
                                        files={"image": ("p.png", photo(0))}, headers=live.client),
            "identify": lambda: http.post(live.base_url + "/identify", files={"image": ("p.png", photo(0))},
                                          headers=live.client),
        }
        for name, call in calls.items():
            r = call()
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.json()["code"] == "database_unavailable" and r.headers["retry-after"], name
            assert "Traceback" not in r.text and "psycopg" not in r.text
        assert time.monotonic() - started < 20, "answers while the database is down must be quick"

        server._run("pg_ctl", "-D", str(server.pgdata), "-w", "-t", "60", "-l", str(server.root / "log"),
                    "-o", f"-h 127.0.0.1 -p {server.port} -k {server.root} {opts}", "start")
        deadline = time.monotonic() + 30
        while http.get(live.base_url + "/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.2)
        for name, call in calls.items():  # same process, same pool: everything works again
            r = call()
            assert r.status_code < 300, (name, r.status_code, r.text)
        assert all_persons(http, live) == {"p0", "p2", "p9"}
