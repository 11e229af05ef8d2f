"""Faults from outside, measured against the real server process (`python -m app serve`,
SQLite, the real model): what ordinary clients see while hostile ones do their worst.

  python bench/faults.py pixels [--seconds 20]    # 8 clients send 6300x6300 PNGs (116 KB-ish)
  python bench/faults.py trickle [--seconds 20]   # 41 bodies of 13 MB, 1 byte every 10 s
  python bench/faults.py guard [--seconds 20]     # the connection guard's cost per request

Each prints the ordinary clients' requests/s, p50 and p99 latency and status counts, the
hostile clients' status counts, and the server's peak RSS. Run it under `nice`; it starts
its own server on a free port with its own SQLite database in a temporary directory.
"""

from __future__ import annotations

import argparse
import collections
import io
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import add_keys, migrated_sqlite_url, yale_bytes  # noqa: E402
from tests.hardening.serving import serve  # noqa: E402


def _rss_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], proc.memory_info().rss)
        except psutil.Error:
            return
        time.sleep(0.1)


def _ordinary(http: httpx.Client, key: str, stop: threading.Event, out: list, statuses: collections.Counter,
              photo: bytes) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            r = http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": key},
                          files={"image": ("a.png", photo)})
            statuses[r.status_code] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
        out.append(time.monotonic() - t0)


def _report(name: str, seconds: float, latencies: list[float], statuses, hostile, peak_rss: int) -> None:
    a = np.array(latencies) if latencies else np.array([np.nan])
    print(f"{name}: ordinary verifies {len(latencies) / seconds:.2f} req/s, p50 {np.median(a):.3f} s, "
          f"p99 {np.percentile(a, 99):.3f} s, max {a.max():.3f} s, statuses {dict(statuses)}; "
          f"hostile statuses {dict(hostile)}; server peak RSS {peak_rss / 2**20:.0f} MiB", flush=True)


def pixels(served, admin_key: str, client_key: str, seconds: float) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (6300, 6300), (120, 130, 140)).save(buf, "PNG")
    costly = buf.getvalue()
    photo = yale_bytes("subject01.happy")
    with httpx.Client(base_url=served.base_url, timeout=300, limits=httpx.Limits(max_connections=32)) as http:
        assert http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                         files={"image": ("a.png", yale_bytes("subject01.normal"))}).status_code == 201
        for phase, attackers in (("alone", 0), (f"with 8 clients sending {len(costly) // 1024} KB "
                                                f"6300x6300 PNGs", 8)):
            stop, peak = threading.Event(), [0]
            latencies, statuses, hostile = [], collections.Counter(), collections.Counter()

            def attack():
                while not stop.is_set():
                    try:
                        r = http.post("/verify", data={"person_id": "s1"}, headers={"X-API-Key": client_key},
                                      files={"image": ("big.png", costly)})
                        hostile[r.status_code] += 1
                        if r.status_code == 503:
                            time.sleep(float(r.headers.get("retry-after", 1)))  # a polite client
                    except httpx.HTTPError as exc:
                        hostile[type(exc).__name__] += 1

            threads = [threading.Thread(target=_rss_sampler, args=(served.proc.pid, stop, peak)),
                       threading.Thread(target=_ordinary, args=(http, client_key, stop, latencies, statuses, photo)),
                       *[threading.Thread(target=attack) for _ in range(attackers)]]
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            _report(phase, seconds, latencies, statuses, hostile, peak[0])


def trickle(served, admin_key: str, client_key: str, seconds: float, other_key: str) -> None:
    """41 connections each declare a body just under the limit and send a byte every 10 s."""
    declared = 13_094_412
    photo = yale_bytes("subject01.happy")
    socks, stop = [], threading.Event()
    hostile = collections.Counter()

    def trickler():
        s = socket.create_connection(("127.0.0.1", served.port))
        s.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nX-API-Key: " + client_key.encode()
                  + b"\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n" % declared
                  + b'--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n')
        socks.append(s)
        s.settimeout(0.05)
        while not stop.is_set():
            try:
                s.sendall(b"a")
                data = s.recv(65536)
                if data:
                    hostile[data.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
                    return
                hostile["closed"] += 1
                return
            except TimeoutError:
                stop.wait(10)
            except OSError as exc:
                hostile[type(exc).__name__] += 1
                return
        hostile["still open at the end"] += 1

    with httpx.Client(base_url=served.base_url, timeout=60) as http:
        assert http.post("/enroll", data={"person_id": "s1"}, headers={"X-API-Key": admin_key},
                         files={"image": ("a.png", yale_bytes("subject01.normal"))}).status_code == 201
        peak = [0]
        threads = [threading.Thread(target=trickler) for _ in range(41)]
        for t in threads:
            t.start()
        time.sleep(2)
        latencies, statuses = [], collections.Counter()
        watcher = threading.Thread(target=_rss_sampler, args=(served.proc.pid, stop, peak))
        watcher.start()
        ordinary_stop = threading.Event()
        worker = threading.Thread(target=_ordinary, args=(http, other_key, ordinary_stop, latencies, statuses, photo))
        worker.start()
        time.sleep(seconds)
        ordinary_stop.set()
        worker.join()
        stop.set()
        for t in threads:
            t.join()
        watcher.join()
        for s in socks:
            s.close()
        _report("during 41 trickling 13 MB bodies (another client key uploads)", seconds, latencies,
                statuses, hostile, peak[0])


def guard(seconds: float) -> None:
    """Requests/s and latency of a trivial ASGI app (so the HTTP layer is what is measured)
    under uvicorn's own httptools protocol and under the connection guard, over one kept-alive
    raw socket per client thread (4 threads), each protocol for `seconds`."""
    import asyncio

    import uvicorn

    from app.api.connections import guarded_protocol

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    request = b"GET /x HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
    for name, proto in (("uvicorn httptools", "httptools"), ("connection guard", guarded_protocol(20, 30, 65536)),
                        ("uvicorn httptools (again)", "httptools")):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, http=proto, log_config=None, access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        stop, latencies = threading.Event(), []

        def client():
            c = socket.create_connection(("127.0.0.1", port))
            mine = []
            while not stop.is_set():
                t0 = time.perf_counter()
                c.sendall(request)
                data = b""
                while not data.endswith(b"ok"):
                    data += c.recv(4096)
                mine.append(time.perf_counter() - t0)
            c.close()
            latencies.extend(mine)

        clients = [threading.Thread(target=client) for _ in range(4)]
        for t in clients:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in clients:
            t.join()
        server.should_exit = True
        thread.join(10)
        sock.close()
        a = np.array(latencies) * 1e3
        print(f"{name}: {len(a) / seconds:.0f} req/s, p50 {np.median(a):.3f} ms, p99 {np.percentile(a, 99):.3f} ms",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["pixels", "trickle", "guard"])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.case == "guard":
        return guard(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        url = migrated_sqlite_url(Path(tmp))
        admin_key, client_key = add_keys(url)
        _, other_key = add_keys(url)
        with serve(Path(tmp), url) as served:
            if args.case == "pixels":
                pixels(served, admin_key, client_key, args.seconds)
            else:
                trickle(served, admin_key, client_key, args.seconds, other_key)


if __name__ == "__main__":
    main()
