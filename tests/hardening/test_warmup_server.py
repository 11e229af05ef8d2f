"""Warm-up against a real server process (`python -m app serve`, real model): from the first
answer on, keyed requests get 401/403/503 as appropriate (503 `not_ready` with Retry-After
for the model routes, 200 for the person records), never a 500."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from app.core.config import REPO_ROOT
from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_keyed_requests_during_warm_up_are_never_500(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    admin_key, client_key = add_keys(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAPI_")}
    env.update(FACEAPI_DATABASE_URL=url, FACEAPI_LOG_LEVEL="WARNING", TF_CPP_MIN_LOG_LEVEL="2")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base, photo = f"http://127.0.0.1:{port}", yale_bytes("subject01.normal")
    keys = {"admin": {"X-API-Key": admin_key}, "client": {"X-API-Key": client_key},
            "wrong": {"X-API-Key": "fa_" + "W" * 43}, "none": {}}
    seen: list[tuple[str, str, int, str]] = []  # (route, key, status, code) before ready
    try:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 240
            ready = False
            while not ready:
                assert time.monotonic() < deadline, "not ready in 240 s"
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    ready = http.get(base + "/health/ready").status_code == 200
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if ready:
                    break
                for name, headers in keys.items():
                    if name == "wrong" and sum(1 for x in seen if x[1] == "wrong") >= 15:
                        continue  # more would exhaust the failed-auth budget of this address
                    for route, send in (
                        ("GET /persons", lambda h: http.get(base + "/persons", headers=h)),
                        ("POST /verify", lambda h: http.post(base + "/verify", data={"person_id": "x"},
                                                             files={"image": ("p.png", photo)}, headers=h)),
                        ("POST /enroll", lambda h: http.post(base + "/enroll", data={"person_id": "x"},
                                                             files={"image": ("p.png", photo)}, headers=h)),
                    ):
                        r = send(headers)
                        code = r.json().get("code", "") if r.status_code >= 400 else ""
                        seen.append((route, name, r.status_code, code))
                        if r.status_code == 503:
                            assert int(r.headers["Retry-After"]) >= 1
                            assert "X-Request-ID" in r.headers
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert seen, "the server was ready before its first answer: nothing was checked"
    assert not [s for s in seen if s[2] >= 500 and s[3] != "not_ready"], seen
    by: dict[tuple[str, str], set] = {}
    for route, key, status, code in seen:
        by.setdefault((route, key), set()).add((status, code))
    assert ("GET /persons", "client") in by and by[("GET /persons", "client")] == {(200, "")}
    assert by[("GET /persons", "wrong")] == {(401, "unauthenticated")}
    assert by[("GET /persons", "none")] == {(401, "unauthenticated")}
    assert (503, "not_ready") in by[("POST /verify", "client")]
    assert (503, "not_ready") in by[("POST /enroll", "admin")]
    assert by[("POST /enroll", "client")] == {(403, "forbidden")}
