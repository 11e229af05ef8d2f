"""Load test: a real `python -m app serve` on 127.0.0.1 driven by a bounded mixed workload.

    python bench/load.py --duration 60 --clients 16 [--write-docs]

Sets up a temporary SQLite database (`python -m app migrate`), an admin and a client key
(`python -m app create-key`), starts the server on a free loopback port, waits for
/health/ready, enrolls a gallery from the Yale faces, then runs `--clients` concurrent
clients for `--duration` seconds, each picking enroll (10%), verify (45%) or identify (45%)
with real photos (Yale and the CelebA subset). Reports requests/s, p50/p99 latency per
operation, the error count (any status other than the expected one), and the server's RSS
at the start and end of the run. Only 127.0.0.1 is contacted; the request count is bounded
by --max-requests as well as by the duration.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEAPI_DATA_DIR") or REPO.parent / "shared" / "data")
sys.path.insert(0, str(REPO))
from bench._common import LocalService, write_docs_block  # noqa: E402


def photos() -> tuple[dict[str, list[bytes]], list[bytes]]:
    """Yale photos by subject, and CelebA photos (JPEG) as extra verify/identify probes."""
    yale: dict[str, list[bytes]] = {}
    for p in sorted((DATA / "yalefaces").glob("subject*.png")):
        yale.setdefault(p.name.split(".")[0], []).append(p.read_bytes())
    celeba = [p.read_bytes() for p in sorted((DATA / "celeba_subset" / "images").glob("*.jpg"))[:200]]
    return yale, celeba


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-requests", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    assert 0 < args.duration <= 600 and 0 < args.clients <= 64

    yale, celeba = photos()
    with LocalService({"FACEAPI_DATA_DIR": str(DATA)}, prefix="faceapi-load-") as service:
        proc = psutil.Process(service.proc.pid)
        base, admin, client, ready_s = service.url, service.keys["admin"], service.keys["client"], service.ready_s
        A, C = {"X-API-Key": admin}, {"X-API-Key": client}
        subjects = sorted(yale)
        with httpx.Client(timeout=60) as http:  # the gallery: one photo of each Yale subject
            for s in subjects:
                r = http.post(base + "/enroll", data={"person_id": s}, files={"image": ("p.png", yale[s][0])},
                              headers=A)
                assert r.status_code == 201, r.text
            # warm-up: a few of each operation, not counted
            for s in subjects[:4]:
                http.post(base + "/verify", data={"person_id": s}, files={"image": ("p.png", yale[s][1])}, headers=C)
                http.post(base + "/identify", files={"image": ("p.png", yale[s][2])}, headers=C)
        rss_start = proc.memory_info().rss

        results: list[tuple[str, float, bool]] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.duration
        budget = [args.max_requests]
        enroll_n = [0]
        rss_samples = [rss_start]

        def sample_rss():
            while time.monotonic() < stop_at:
                rss_samples.append(proc.memory_info().rss)
                time.sleep(1.0)

        def client_loop(i: int):
            rnd = random.Random(args.seed * 1000 + i)
            with httpx.Client(timeout=120) as http:
                while time.monotonic() < stop_at:
                    with lock:
                        if budget[0] <= 0:
                            return
                        budget[0] -= 1
                    x = rnd.random()
                    s = rnd.choice(subjects)
                    if x < 0.10:
                        with lock:
                            enroll_n[0] += 1
                            pid = f"load-{enroll_n[0]}"
                        op, expect = "enroll", 201
                        image = rnd.choice(yale[s][1:])
                        call = lambda: http.post(base + "/enroll", data={"person_id": pid},  # noqa: E731
                                                 files={"image": ("p.png", image)}, headers=A)
                    elif x < 0.55:
                        op, expect = "verify", 200
                        image = rnd.choice(yale[s][1:]) if rnd.random() < 0.7 else rnd.choice(celeba or yale[s])
                        call = lambda: http.post(base + "/verify", data={"person_id": s},  # noqa: E731
                                                 files={"image": ("p.jpg", image)}, headers=C)
                    else:
                        op, expect = "identify", 200
                        image = rnd.choice(yale[s][1:]) if rnd.random() < 0.7 else rnd.choice(celeba or yale[s])
                        call = lambda: http.post(base + "/identify", data={"top_k": "5"},  # noqa: E731
                                                 files={"image": ("p.jpg", image)}, headers=C)
                    started = time.perf_counter()
                    try:
                        r = call()
                        # a photo in which MTCNN finds no usable face is a correct 422, not an error
                        ok = r.status_code == expect or (r.status_code == 422 and r.json().get("code") in (
                            "no_face", "multiple_faces", "face_too_small", "low_quality"))
                        ok_code = r.status_code
                    except httpx.HTTPError as exc:
                        ok, ok_code = False, type(exc).__name__
                    elapsed = time.perf_counter() - started
                    with lock:
                        results.append((op, elapsed, ok))
                        if not ok:
                            print(f"error: {op} -> {ok_code}", file=sys.stderr)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        sampler = threading.Thread(target=sample_rss, daemon=True)
        run_started = time.monotonic()
        sampler.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - run_started
        rss_end = proc.memory_info().rss
        metrics = httpx.get(base + "/metrics").text

    batch_sum = re.search(r"faceapi_embed_batch_size_sum ([0-9.e+]+)", metrics)
    batch_cnt = re.search(r"faceapi_embed_batch_size_count ([0-9.e+]+)", metrics)
    mean_batch = float(batch_sum.group(1)) / max(1.0, float(batch_cnt.group(1))) if batch_sum and batch_cnt else float("nan")
    rows = []
    for op in ("enroll", "verify", "identify", "all"):
        lat = np.array([e for o, e, _ in results if op == "all" or o == op]) * 1e3
        errs = sum(1 for o, _, ok in results if (op == "all" or o == op) and not ok)
        if len(lat):
            rows.append((op, len(lat), len(lat) / wall, np.percentile(lat, 50), np.percentile(lat, 99), errs))
    mb = 1024 * 1024
    report = [
        f"Mixed workload, {args.clients} concurrent clients, {wall:.0f} s, real MTCNN + FaceNet on "
        f"{psutil.cpu_count()} CPU cores, SQLite, {len(subjects)} persons enrolled at start "
        f"(server ready {ready_s:.0f} s after start):",
        "",
        "| operation | requests | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {op} | {n} | {rps:.2f} | {p50:.0f} | {p99:.0f} | {e} |" for op, n, rps, p50, p99, e in rows],
        "",
        f"Server RSS: {rss_start / mb:.0f} MB at the start of the run, {rss_end / mb:.0f} MB at the end "
        f"(max {max(rss_samples) / mb:.0f} MB sampled each second); mean embedding batch {mean_batch:.2f} faces.",
    ]
    text = "\n".join(report)
    print(text)
    if args.write_docs:
        command = (f"python bench/load.py --duration {args.duration:g} --clients {args.clients} --write-docs")
        write_docs_block("load", (
            f"### Load (bench/load.py)\n\n`{command}`\n\n{text}\n\n"
            "A 422 with a face code (no_face and the like, for CelebA photos MTCNN cannot use) counts "
            "as a correct answer; anything else (5xx, 4xx of another kind, transport errors) is an error."))
    errors = sum(1 for _, _, ok in results if not ok)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
