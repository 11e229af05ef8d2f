"""Answers sent before the request body was read, and the request head's size limit,
against the real server process over real sockets.

- A wrong key with a large upload is answered 401 before the body is read. Python's
  urllib sends its whole body before it reads (no `Expect: 100-continue`) and asks the
  server to close the connection: a server that closes at once, with body bytes unread,
  makes the kernel send a reset, and the client loses the 401 to "connection reset".
- On a kept-alive connection the rest of the body is read and dropped, and the next
  request on the same connection is served.
- A request head over the limit is 431 however it arrives, in one write too."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request

import pytest

from tests.conftest import add_keys, migrated_sqlite_url
from tests.hardening.serving import serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("early")
    url = migrated_sqlite_url(tmp)
    _, client_key = add_keys(url)
    with serve(tmp, url, wait_for="/health/live") as s:  # keys need no model
        yield s, client_key


def multipart(size: int) -> bytes:
    return (b'--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
            + os.urandom(size) + b"\r\n--XX--\r\n")


def test_urllib_gets_the_early_401_of_a_large_upload(served):
    s, _ = served
    body = multipart(8 * 1024 * 1024)
    outcomes = []
    for _ in range(10):
        request = urllib.request.Request(s.base_url + "/enroll", data=body, method="POST", headers={
            "X-API-Key": "fa_wrong", "Content-Type": "multipart/form-data; boundary=XX"})
        try:
            urllib.request.urlopen(request, timeout=60)
            outcomes.append("no error")
        except urllib.error.HTTPError as exc:
            outcomes.append(exc.code)
        except (urllib.error.URLError, OSError) as exc:  # a reset while sending, or before the answer
            outcomes.append(type(getattr(exc, "reason", exc)).__name__)
    assert outcomes == [401] * 10, outcomes


def read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_after_an_early_401_the_kept_alive_connection_serves_the_next_request(served):
    s, _ = served
    body = multipart(1024 * 1024)
    with socket.create_connection(("127.0.0.1", s.port), timeout=20) as sock:
        sock.sendall(b"POST /enroll HTTP/1.1\r\nHost: x\r\nX-API-Key: fa_wrong\r\n"
                     b"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert read_answer(sock).startswith(b"HTTP/1.1 401 ")
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
    assert "exceeds 65536 bytes" not in s.log()  # the dropped body was not taken for a head


@pytest.mark.parametrize("writes", [1, 2])
def test_a_70_kb_head_is_431_even_in_one_write(served, writes):
    s, client_key = served
    head = (b"GET /persons HTTP/1.1\r\nHost: x\r\nX-API-Key: " + client_key.encode()
            + b"\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", s.port), timeout=20) as sock:
        half = len(head) // writes
        for i in range(writes):
            sock.sendall(head[i * half:] if i == writes - 1 else head[i * half:(i + 1) * half])
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"request_header_too_large"' in answer
