"""Bodies that trickle in, against the real server process and model over real sockets:
41 connections of one client key each declare a body just under the size limit and send
a byte every half second (never a stall, so the idle timeout never fires). They must not
reserve the in-flight body budget that every other client shares: one key holds at most
its share (the rest are 429 at once), and a body that arrives at less than the minimum
rate is cut off (408). Meanwhile another client's uploads are answered 200.

Scaled down from the probe (41 x 13 MB within 512 MiB, a byte every 10 s): a 1 MiB upload
limit, a budget that 11 such bodies fill, 2 s limits."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from app.core.config import Settings
from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes
from tests.hardening.serving import serve

UPLOAD = 1024 * 1024
DECLARED = Settings(max_upload_bytes=UPLOAD).max_body_bytes  # just at the body limit
BUDGET = 11 * DECLARED + 1000  # 11 trickling bodies leave 1000 bytes for everyone else


def trickle(port: int, key: str, stop: threading.Event, answers: list) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode()
                 + b"\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n" % DECLARED
                 + b'--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n')
    sock.settimeout(0.5)
    try:
        while not stop.is_set():
            try:
                data = sock.recv(4096)
                answers.append(data.split(b"\r\n", 1)[0].decode() if data else "closed without an answer")
                return
            except TimeoutError:
                sock.sendall(b"a")
        answers.append("still sending")
    except OSError as exc:
        answers.append(type(exc).__name__)
    finally:
        sock.close()


def test_trickling_bodies_of_one_key_do_not_lock_other_uploads_out(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    admin_key, trickler_key = add_keys(url)
    _, other_key = add_keys(url)
    settings = dict(max_upload_bytes=UPLOAD, max_inflight_body_bytes=BUDGET,
                    max_inflight_body_bytes_per_client=4 * 1024 * 1024,
                    request_body_idle_timeout_s=2, request_body_min_rate=1000)
    with serve(tmp_path, url, **settings) as served, \
            httpx.Client(base_url=served.base_url, timeout=60) as http:
        photo = yale_bytes("subject01.normal")
        assert http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                         files={"image": ("a.png", photo)}).status_code == 201
        stop, answers = threading.Event(), []
        threads = [threading.Thread(target=trickle, args=(served.port, trickler_key, stop, answers))
                   for _ in range(41)]
        for t in threads:
            t.start()
        time.sleep(1)  # every trickling body has its head in: each holds what it declared, or was refused
        others = [http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": other_key},
                            files={"image": ("b.png", yale_bytes("subject01.happy"))}) for _ in range(5)]
        deadline = time.monotonic() + 30  # the probe's trickle went on for 45 s and more
        while len(answers) < 41 and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
        log = served.log()
    assert [r.status_code for r in others] == [200] * 5, [r.text[:300] for r in others]
    statuses = sorted(a.split(" ")[1] if a.startswith("HTTP/1.1") else a for a in answers)
    # one key's share (4 MiB) holds two of these bodies; the others are refused at once, and
    # the two are cut off for arriving at ~2 bytes/s, under the 1000 bytes/s minimum
    assert statuses.count("429") >= 38 and set(statuses) <= {"429", "408"}, statuses
    assert "408" in statuses and "bytes/s" in log, statuses


def test_a_steady_body_that_takes_too_long_in_all_is_cut_off(tmp_path):
    """Above the minimum rate and never stalling, but past the total body deadline: 408."""
    url = migrated_sqlite_url(tmp_path)
    _, client_key = add_keys(url)
    with serve(tmp_path, url, request_body_idle_timeout_s=2, request_body_min_rate=100,
               request_body_timeout_s=4) as served:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        sock.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nX-API-Key: " + client_key.encode()
                     + b"\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 1000000\r\n\r\n"
                     + b'--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n')
        sock.settimeout(0.5)
        answer, started = b"", time.monotonic()
        try:
            while time.monotonic() - started < 20:  # 400 bytes/s: 1 MB would take 40 min
                try:
                    data = sock.recv(4096)
                    answer += data
                    if not data or b'"code"' in answer:
                        break
                except TimeoutError:
                    sock.sendall(b"a" * 200)
        except OSError:
            pass
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"did not arrive within 4 s" in answer, answer
