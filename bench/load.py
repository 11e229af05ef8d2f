"""Load test: a real `python -m app serve` on 127.0.0.1 driven by a mixed workload, at several
client counts in one run (same server, same gallery).

    flock /tmp/timing.lock python bench/load.py --duration 60 --clients 16,64 [--write-docs]

Sets up a temporary SQLite database (`python -m app migrate`), an admin and a client key
(`python -m app create-key`), starts the server with the README's `serve` on a free loopback
port, waits for /health/ready, enrolls a gallery from the Yale faces, then for each client
count runs that many concurrent clients for `--duration` seconds, each picking enroll (10%),
verify (45%) or identify (45%) with real photos (Yale and the CelebA subset).

A 503 `overloaded` is the server shedding load: the client waits its Retry-After, as a
well-behaved client does, and tries again with a new request; these are counted as shed, not
as errors. Latency percentiles are over admitted requests (every answer but `overloaded`).
Errors: any other 5xx, a transport error, or a 4xx other than the expected face codes.
Reports requests/s, p50/p99 per operation, and the server's RSS at the start, max and end.
Only 127.0.0.1 is contacted; the request count is bounded by --max-requests per phase too.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: app/ importable
from app.core.config import load_settings  # noqa: E402
from bench._common import LocalService, write_docs_block  # noqa: E402

DATA = load_settings().data_dir
FACE_CODES = ("no_face", "multiple_faces", "face_too_small", "low_quality")


def photos() -> tuple[dict[str, list[bytes]], list[bytes]]:
    """Yale photos by subject, and CelebA photos (JPEG) as extra verify/identify probes."""
    yale: dict[str, list[bytes]] = {}
    for p in sorted((DATA / "yalefaces").glob("subject*.png")):
        yale.setdefault(p.name.split(".")[0], []).append(p.read_bytes())
    celeba = [p.read_bytes() for p in sorted((DATA / "celeba_subset" / "images").glob("*.jpg"))[:200]]
    return yale, celeba


@dataclass
class Phase:
    clients: int
    wall: float = 0.0
    admitted: list[tuple[str, float]] = field(default_factory=list)  # (operation, seconds)
    shed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # what -> count


def run_phase(base: str, keys: dict, yale, celeba, clients: int, duration: float, max_requests: int,
              seed: int, enroll_counter: list[int]) -> Phase:
    subjects = sorted(yale)
    A, C = {"X-API-Key": keys["admin"]}, {"X-API-Key": keys["client"]}
    phase, lock = Phase(clients), threading.Lock()
    stop_at = time.monotonic() + duration
    budget = [max_requests]

    def client_loop(i: int):
        rnd = random.Random(seed * 1000 + clients * 100 + i)
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < stop_at:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                x, s = rnd.random(), rnd.choice(subjects)
                probe = rnd.choice(yale[s][1:]) if rnd.random() < 0.7 else rnd.choice(celeba or yale[s])
                if x < 0.10:
                    with lock:
                        enroll_counter[0] += 1
                        pid = f"load-{enroll_counter[0]}"
                    op, expect, url, data, headers = "enroll", 201, "/enroll", {"person_id": pid}, A
                    probe = rnd.choice(yale[s][1:])
                elif x < 0.55:
                    op, expect, url, data, headers = "verify", 200, "/verify", {"person_id": s}, C
                else:
                    op, expect, url, data, headers = "identify", 200, "/identify", {"top_k": "5"}, C
                started = time.perf_counter()
                try:
                    r = http.post(base + url, data=data, files={"image": ("p.jpg", probe)}, headers=headers)
                except httpx.HTTPError as exc:
                    with lock:
                        key = f"transport {type(exc).__name__}"
                        phase.errors[key] = phase.errors.get(key, 0) + 1
                    continue
                elapsed = time.perf_counter() - started
                code = r.json().get("code", "") if r.status_code >= 400 else ""
                if r.status_code == 503 and code == "overloaded":
                    with lock:
                        phase.shed += 1
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                ok = r.status_code == expect or (r.status_code == 422 and code in FACE_CODES)
                with lock:
                    phase.admitted.append((op, elapsed))
                    if not ok:
                        key = f"{op} {r.status_code} {code}"
                        phase.errors[key] = phase.errors.get(key, 0) + 1

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.wall = time.monotonic() - t0
    return phase


def phase_rows(p: Phase) -> list[str]:
    rows = []
    for op in ("enroll", "verify", "identify", "all"):
        lat = np.array([e for o, e in p.admitted if op == "all" or o == op]) * 1e3
        if len(lat):
            shed = f"{p.shed}" if op == "all" else ""
            errs = sum(p.errors.values()) if op == "all" else sum(
                n for k, n in p.errors.items() if k.startswith(op + " "))
            rows.append(f"| {p.clients} | {op} | {len(lat)} | {len(lat) / p.wall:.2f} | "
                        f"{np.percentile(lat, 50):.0f} | {np.percentile(lat, 99):.0f} | {shed} | {errs} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per client count")
    ap.add_argument("--clients", default="16,64", help="client counts, run one after the other")
    ap.add_argument("--max-requests", type=int, default=20_000, help="per client count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    assert 0 < args.duration <= 600 and all(0 < c <= 64 for c in counts)

    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    yale, celeba = photos()
    with LocalService({"FACEAPI_DATA_DIR": str(DATA)}, prefix="faceapi-load-") as service:
        proc = psutil.Process(service.proc.pid)
        base = service.url
        with httpx.Client(timeout=60) as http:  # the gallery: one photo of each Yale subject
            for s in sorted(yale):
                r = http.post(base + "/enroll", data={"person_id": s}, files={"image": ("p.png", yale[s][0])},
                              headers={"X-API-Key": service.keys["admin"]})
                assert r.status_code == 201, r.text
        rss_start = proc.memory_info().rss
        rss_samples, sampling = [rss_start], [True]

        def sample_rss():
            while sampling[0]:
                rss_samples.append(proc.memory_info().rss)
                time.sleep(1.0)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        enroll_counter = [0]
        phases = [run_phase(base, service.keys, yale, celeba, c, args.duration, args.max_requests,
                            args.seed, enroll_counter) for c in counts]
        sampling[0] = False
        sampler.join()
        rss_end = proc.memory_info().rss
        metrics = httpx.get(base + "/metrics").text
        ready_s = service.ready_s
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    batch_sum = re.search(r"faceapi_embed_batch_size_sum ([0-9.e+]+)", metrics)
    batch_cnt = re.search(r"faceapi_embed_batch_size_count ([0-9.e+]+)", metrics)
    mean_batch = (float(batch_sum.group(1)) / max(1.0, float(batch_cnt.group(1)))
                  if batch_sum and batch_cnt else float("nan"))
    mb = 1024 * 1024
    errors = {k: n for p in phases for k, n in p.errors.items()}
    report = [
        f"Mixed workload (enroll 10 %, verify 45 %, identify 45 %), {args.duration:.0f} s per client "
        f"count, one server: real YuNet + {load_settings().model} on {psutil.cpu_count()} CPU cores, SQLite, "
        f"{len(yale)} persons enrolled at start (server ready {ready_s:.0f} s after start), default "
        "settings (FACEAPI_DETECT_QUEUE_MAX, FACEAPI_EMBED_QUEUE_MAX).",
        "",
        "| clients | operation | admitted | admitted/s | p50 ms | p99 ms | shed (503 overloaded) | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        *[row for p in phases for row in phase_rows(p)],
        "",
        f"Errors (5xx other than `overloaded`, transport errors, unexpected 4xx): "
        f"{sum(errors.values())}{' ' + str(errors) if errors else ''}.",
        f"Server RSS: {rss_start / mb:.0f} MB at the start, max {max(rss_samples) / mb:.0f} MB "
        f"(sampled each second), {rss_end / mb:.0f} MB at the end; mean embedding batch "
        f"{mean_batch:.2f} faces.",
        f"Machine load: `{uptime_before}` before, `{uptime_after}` after.",
    ]
    text = "\n".join(report)
    print(text)
    if args.write_docs:
        command = (f"flock /tmp/timing.lock python bench/load.py --duration {args.duration:g} "
                   f"--clients {args.clients} --write-docs")
        write_docs_block("load", (
            f"### Load (bench/load.py)\n\n`{command}`\n\n{text}\n\n"
            "A shed request is answered at once with 503 `overloaded` and `Retry-After: 1`; the "
            "client waits that long and sends a new request. A 422 with a face code (no_face and "
            "the like, for CelebA photos the detector cannot use) counts as a correct answer."))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
