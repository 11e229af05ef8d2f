"""The embedder runtimes side by side (FACEAPI_RUNTIME=keras and litert), in one run, each in
its own `python -m app serve` process (the README's start-up, bench/_common.py: LocalService):

1. memory: RSS at ready (and launch to ready), then after one model batch of 32 faces: 32
   concurrent /verify requests to a server started with FACEAPI_BATCH_MAX_WAIT_MS=1000 (its upper bound), so the
   worker gathers them into one batch (checked on /metrics: faceapi_embed_batch_size);
2. /verify requests/s with 1 and 16 clients (bench/verify_pairs.py: drive_verify, default
   batching), the runtimes' rows alternating so other load on the CPU hits both alike, and the
   server's CPU time per request over the same rows (less sensitive to other jobs on the CPU);
3. peak RSS under bench/load.py's mixed workload (run_phase) at 32 clients, sampled every 0.1 s;
4. cosine of each runtime's fused embedding to the Keras one on real aligned Yale faces.

    nice python bench/runtimes.py [--seconds 15] [--load-seconds 20] [--write-docs]

The LiteRT model cache is built first (`python -m app models prepare`, timed apart), so launch
to ready is the service's own start. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench._common import LocalService, write_docs_block  # noqa: E402

RUNTIMES = ("keras", "litert")
SUBJECTS = [f"subject{i:02d}" for i in range(1, 16)]
CONDITIONS = ("happy", "sad", "sleepy", "surprised", "wink", "glasses")


def rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the server process has used so far."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def enroll_yale(server) -> None:
    import httpx

    from tests.conftest import yale_bytes

    for s in SUBJECTS:
        r = httpx.post(f"{server.url}/enroll", data={"person_id": s},
                       files={"image": ("e.png", yale_bytes(f"{s}.normal"))},
                       headers={"X-API-Key": server.keys["admin"]}, timeout=120)
        r.raise_for_status()


def batch_metrics(server) -> tuple[int, float]:
    import httpx

    text = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": server.keys["admin"]}, timeout=30).text
    count = float(re.search(r"^faceapi_embed_batch_size_count (\S+)", text, re.M).group(1))
    total = float(re.search(r"^faceapi_embed_batch_size_sum (\S+)", text, re.M).group(1))
    return int(count), total


async def concurrent_verifies(server, photos: list[tuple[str, bytes]]) -> list[int]:
    import httpx

    async with httpx.AsyncClient(timeout=120) as http:
        rs = await asyncio.gather(*(
            http.post(f"{server.url}/verify", data={"person_id": p}, files={"image": ("p.jpg", b)},
                      headers={"X-API-Key": server.keys["client"]}) for p, b in photos))
    return [r.status_code for r in rs]


def memory_row(runtime: str, photos) -> dict:
    """RSS at ready and after one batch of 32 faces, in a fresh server."""
    settings = {"FACEAPI_RUNTIME": runtime, "FACEAPI_DETECT_QUEUE_MAX": "64", "FACEAPI_EMBED_QUEUE_MAX": "64",
                "FACEAPI_BATCH_MAX_WAIT_MS": "1000"}
    with LocalService(settings) as server:
        row = {"ready_s": round(server.ready_s, 2), "rss_ready_mib": rss_mib(server.proc.pid)}
        enroll_yale(server)
        before = batch_metrics(server)
        statuses = asyncio.run(concurrent_verifies(server, photos[:32]))
        after = batch_metrics(server)
        row["rss_after_batch32_mib"] = rss_mib(server.proc.pid)
        row["batch32"] = {"statuses": sorted(set(statuses)), "batches": after[0] - before[0],
                          "faces": after[1] - before[1]}
    return row


def peak_under_load(server, clients: int, seconds: float) -> dict:
    from bench.load import photos as load_photos
    from bench.load import run_phase

    yale, celeba = load_photos()
    peak, stop = [rss_mib(server.proc.pid)], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib(server.proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    phase = run_phase(server.url, server.keys, yale, celeba, clients, seconds, 20_000, 0, [0])
    stop.set()
    t.join()
    return {"peak_rss_mib": peak[0], "requests_per_s": round(len(phase.admitted) / phase.wall, 2),
            "shed": phase.shed, "errors": sum(phase.errors.values())}


def cosine_to_keras(n: int = 48) -> dict:
    """Both runtimes' fused embeddings of real aligned Yale faces, in this process."""
    from PIL import Image

    from app.core.config import load_settings
    from app.inference.artifacts import load_artifact
    from app.inference.registry import build_embedder
    from app.inference.litert import LiteRTOptions
    from app.vision.align import align_face
    from app.vision.detect import YuNetDetector

    settings = load_settings()
    artifact = load_artifact(settings.model_dir())
    detector, faces = YuNetDetector(), []
    for p in sorted((settings.data_dir / "yalefaces").glob("subject*.png"))[:n]:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        found = detector.detect(rgb)
        if found:
            faces.append(align_face(rgb, found[0].landmarks, artifact.alignment))
    faces = np.stack(faces)
    keras_e = build_embedder(artifact).embed(faces)
    lite_e = build_embedder(artifact, litert=LiteRTOptions(settings.model_cache_dir, settings.litert_threads)).embed(faces)
    cos = np.sum(keras_e * lite_e, axis=1)
    dist_k, dist_l = 1 - keras_e @ keras_e.T, 1 - lite_e @ lite_e.T
    return {"faces": len(faces), "litert_min": float(cos.min()), "litert_mean": float(cos.mean()),
            "max_pair_distance_diff": float(np.abs(dist_k - dist_l).max())}


def markdown(result: dict, command: str) -> str:
    rows = result["rows"]
    lines = [f"Command: `{command}` ({result['date']}; {result['cpus']} CPU cores shared with other work; "
             f"LiteRT build step {result['build_s']} s beforehand, cached).", "",
             "| runtime | launch to ready (s) | RSS at ready (MiB) | RSS after a batch of 32 (MiB) | "
             "peak RSS, load.py 32 clients (MiB) | /verify req/s, 1 client | /verify req/s, 16 clients | "
             "server CPU ms per /verify, 1 / 16 clients | cosine to Keras |", "|---|---|---|---|---|---|---|---|---|"]
    for rt in RUNTIMES:
        r = rows[rt]
        cos = "1 (reference)" if rt == "keras" else (f"min {result['cosine']['litert_min']:.7f}, mean "
                                                     f"{result['cosine']['litert_mean']:.7f}")
        lines.append(f"| {rt} | {r['ready_s']} | {r['rss_ready_mib']:.0f} | {r['rss_after_batch32_mib']:.0f} | "
                     f"{r['load32']['peak_rss_mib']:.0f} | {r['1 client(s)']['rps']} | "
                     f"{r['16 client(s)']['rps']} | {r['1 client(s)']['server_cpu_ms_per_request']} / "
                     f"{r['16 client(s)']['server_cpu_ms_per_request']} | {cos} |")
    b = {rt: rows[rt]["batch32"] for rt in RUNTIMES}
    lines += ["", "The batch of 32: " + "; ".join(f"{rt}: {v['batches']} batch(es), {v['faces']:.0f} faces, "
                                                   f"statuses {v['statuses']}" for rt, v in b.items())
              + f". Cosine over {result['cosine']['faces']} aligned Yale faces; largest difference of a "
              f"pairwise cosine distance {result['cosine']['max_pair_distance_diff']:.1e}. Under load.py at 32 "
              "clients: " + "; ".join(f"{rt} {rows[rt]['load32']['requests_per_s']} req/s, "
                                      f"{rows[rt]['load32']['shed']} shed, {rows[rt]['load32']['errors']} errors"
                                      for rt in RUNTIMES) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15.0, help="per /verify throughput row")
    p.add_argument("--load-seconds", type=float, default=20.0, help="load.py phase at 32 clients")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--json", type=Path, default=REPO / "var" / "bench" / "runtimes.json")
    a = p.parse_args()
    from bench.verify_pairs import drive_verify
    from tests.conftest import as_jpeg, yale_bytes

    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "app", "models", "prepare"], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    result = {"build_s": round(time.monotonic() - t, 1), "date": time.strftime("%Y-%m-%d"),
              "cpus": os.cpu_count(), "rows": {}}
    photos = [(s, as_jpeg(yale_bytes(f"{s}.{c}"))) for s in SUBJECTS for c in CONDITIONS]
    rows = result["rows"]
    for rt in RUNTIMES:
        rows[rt] = memory_row(rt, photos)
        print(rt, rows[rt], flush=True)
    servers = {}
    try:
        for rt in RUNTIMES:
            servers[rt] = LocalService({"FACEAPI_RUNTIME": rt, "FACEAPI_DETECT_QUEUE_MAX": "64"}).__enter__()
            enroll_yale(servers[rt])
            asyncio.run(drive_verify(servers[rt].url, servers[rt].keys["admin"], photos, 4, 3))  # warm
        for clients in (1, 16):
            for rt, server in servers.items():
                cpu = cpu_seconds(server.proc.pid)
                row = asyncio.run(drive_verify(server.url, server.keys["admin"], photos, clients, a.seconds))
                row["server_cpu_ms_per_request"] = round(1000 * (cpu_seconds(server.proc.pid) - cpu)
                                                         / max(row["requests"], 1), 1)
                rows[rt][f"{clients} client(s)"] = row
                print(rt, clients, row, flush=True)
        for rt, server in servers.items():
            rows[rt]["load32"] = peak_under_load(server, 32, a.load_seconds)
            print(rt, "load32", rows[rt]["load32"], flush=True)
    finally:
        for server in servers.values():
            server.__exit__()
    result["cosine"] = cosine_to_keras()
    print(json.dumps(result["cosine"]), flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1))
    command = "nice python bench/runtimes.py" + ("" if a.seconds == 15 else f" --seconds {a.seconds:g}") + (
        "" if a.load_seconds == 20 else f" --load-seconds {a.load_seconds:g}")
    md = markdown(result, command)
    print(md)
    if a.write_docs:
        write_docs_block("runtimes", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
