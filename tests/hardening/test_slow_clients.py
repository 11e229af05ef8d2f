"""Slow and endless requests against the real server process (`python -m app serve`, real
model), over raw sockets: clients that send half a request head and then nothing, drip it a
byte at a time, stall in the middle of a body, or send a header line that never ends. Each
gets a problem+json 408/431 and its connection is closed, and they cannot lock other
clients out, even past the process's descriptor limit; a slow but steady upload still
goes through (the body limit is on stalls, not on total time)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest

from app.core.config import REPO_ROOT
from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes

TIMEOUT_S = 2  # FACEAPI_REQUEST_HEAD_TIMEOUT_S and _BODY_IDLE_TIMEOUT_S of this server
FDS = 512  # the server's descriptor limit (soft and hard: it cannot lift it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow")
    url = migrated_sqlite_url(tmp)
    _, client_key = add_keys(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAPI_")}
    env.update(FACEAPI_DATABASE_URL=url, FACEAPI_LOG_LEVEL="WARNING", TF_CPP_MIN_LOG_LEVEL="2",
               FACEAPI_REQUEST_HEAD_TIMEOUT_S=str(TIMEOUT_S), FACEAPI_REQUEST_BODY_IDLE_TIMEOUT_S=str(TIMEOUT_S))
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS)))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, "not ready in 240 s"
            try:
                if httpx.get(base + "/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield port, {"X-API-Key": client_key}, proc
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(sock: socket.socket, timeout: float = 15.0) -> tuple[bytes, float]:
    """Everything until the server closes, and how long that took."""
    sock.settimeout(timeout)
    out, t0 = b"", time.monotonic()
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return out, time.monotonic() - t0


def assert_problem(answer: bytes, status: int, code: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:300]
    assert b"content-type: application/problem+json" in head.lower(), head
    assert b'"code":"%s"' % code.encode() in body, body


def test_half_a_request_head_is_408_and_closed(server):
    port, _, _ = server
    silent = connect(port)  # connects and sends nothing
    half = connect(port)
    half.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    for sock in (silent, half):
        answer, waited = read_all(sock)
        assert_problem(answer, 408, "request_timeout")
        assert waited < TIMEOUT_S + 5
        sock.close()


def test_a_dripped_request_head_is_cut_off_at_the_deadline(server):
    """One byte every 0.2 s: each byte would reset an idle timer; the head deadline holds."""
    port, _, _ = server
    sock = connect(port)
    t0 = time.monotonic()
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 200
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer, _ = read_all(sock)
    assert time.monotonic() - t0 < TIMEOUT_S + 5  # the whole head would take 48 s
    assert_problem(answer, 408, "request_timeout")


def test_the_next_request_on_a_kept_alive_connection_has_a_deadline_too(server):
    port, _, _ = server
    sock = connect(port)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
    answer, waited = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 ") and waited < TIMEOUT_S + 5
    assert_problem(answer[answer.index(b"HTTP/1.1 408"):], 408, "request_timeout")


def test_a_stalled_body_is_408_and_closed(server):
    port, client, _ = server
    sock = connect(port)
    sock.sendall(b"POST /identify HTTP/1.1\r\nHost: x\r\nX-API-Key: " + client["X-API-Key"].encode()
                 + b"\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n"
                 b"--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n")
    answer, waited = read_all(sock)
    assert_problem(answer, 408, "request_timeout")
    assert waited < TIMEOUT_S + 5


def test_a_slow_but_steady_upload_goes_through(server):
    """A photo sent in 2 KB pieces every 0.25 s for well over the stall limit in total."""
    port, client, _ = server
    photo = yale_bytes("subject01.normal")
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + photo + b"\r\n--XX--\r\n")
    pieces = [body[i:i + 2048] for i in range(0, len(body), 2048)][:12] + [body[12 * 2048:]]
    sock = connect(port)
    sock.sendall(b"POST /identify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: "
                 + client["X-API-Key"].encode() + b"\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
                 + b"Content-Length: %d\r\n\r\n" % len(body))
    t0 = time.monotonic()
    for piece in pieces:
        sock.sendall(piece)
        time.sleep(0.25)
    assert time.monotonic() - t0 > TIMEOUT_S  # longer than the stall limit, in total
    answer, _ = read_all(sock, 60)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:400]
    assert b'"faces_detected":1' in answer


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_an_endless_header_line_is_431_and_not_buffered(server):
    port, _, proc = server
    before = rss_kb(proc.pid)
    sock = connect(port)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent = 0
    try:
        while sent < 256 * 2**20:
            sent += sock.send(b"a" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    grown = rss_kb(proc.pid) - before  # measured while the connection is still open
    answer, _ = read_all(sock)
    assert_problem(answer, 431, "request_header_too_large")
    assert sent < 32 * 2**20, f"the server took {sent} bytes of one header"
    assert grown < 64 * 1024, f"RSS grew {grown} KB"  # was ~1 MB per MB sent


def test_slow_clients_beyond_the_descriptor_limit_do_not_lock_others_out(server):
    """More half-sent heads than the server has descriptors: new clients are refused only
    until the head deadline frees them (before, they were held for ever)."""
    port, client, _ = server
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * FDS:  # this test process needs a descriptor per slow client too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * FDS), hard))
    held = []
    for _ in range(FDS + 100):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        except OSError:
            break
    try:
        t0, status = time.monotonic(), None
        while time.monotonic() - t0 < TIMEOUT_S + 20:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/persons", headers=client, timeout=5).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert status == 200, f"no fresh client served in {time.monotonic() - t0:.0f} s"
    finally:
        for sock in held:
            sock.close()
