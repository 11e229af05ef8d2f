"""The Docker Compose stack, measured: image sizes, cold start to ready, memory per container
at ready and after the README walkthrough, and /verify requests/s through the nginx proxy with
1 and then 2 api replicas (same run, same stack, same clients).

    deploy/docker-ready.sh && deploy/local-images.sh && docker compose build api
    flock /tmp/timing.lock python bench/compose.py --clients 16 --duration 30 [--write-docs]

Runs its own compose project (`faceapi-bench`, a free loopback port, its volume removed at the
end); the images must exist (the build is not timed). Cold start: from `docker compose up` on an
empty volume (initdb included) until /health/ready answers 200 through the proxy. Memory: each
container's resident set (cgroup v1 `total_rss`; `docker stats` where the cgroup is not found).
Load: `--clients` threads each posting /verify with a Yale photo of an enrolled person, for
`--duration` seconds per phase; after scaling to 2 the proxy is restarted so that nginx resolves
both replicas. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: app/ importable
from app.core.config import REPO_ROOT, Settings  # noqa: E402
from bench._common import free_port, write_docs_block  # noqa: E402

PROJECT = "faceapi-bench"
YALE = Settings().data_dir / "yalefaces"


class Compose:
    def __init__(self, port: int) -> None:
        self.env = {**os.environ, "PROXY_PORT": str(port), "POSTGRES_PASSWORD": secrets.token_hex(8),
                    "FACEAPI_DATA_DIR": str(Settings().data_dir)}
        self.url = f"http://127.0.0.1:{port}"

    def __call__(self, *args: str, timeout: float = 600) -> str:
        return subprocess.run(["docker", "compose", "-p", PROJECT, *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=True).stdout

    def containers(self) -> dict[str, str]:
        """service-number -> container id"""
        out = {}
        for line in self("ps", "--format", "json").splitlines():
            c = json.loads(line)
            out[c["Name"].removeprefix(PROJECT + "-")] = c["ID"]
        return out

    def wait_ready(self, timeout: float = 600) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=5).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the stack did not become ready")


def rss_mib(container_id: str) -> float:
    full = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", container_id], capture_output=True,
                          text=True, check=True).stdout.strip()
    stat = Path(f"/sys/fs/cgroup/memory/docker/{full}/memory.stat")
    if stat.is_file():
        values = dict(line.split() for line in stat.read_text().splitlines())
        return int(values["total_rss"]) / 2**20
    usage = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", full],
                           capture_output=True, text=True, check=True).stdout.split("/")[0].strip()
    number, unit = float(usage[:-3]), usage[-3:]
    return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


def memory(c: Compose) -> dict[str, float]:
    return {name: round(rss_mib(cid)) for name, cid in sorted(c.containers().items())}


def image_sizes() -> dict[str, float]:
    names = ["faceapi:0.1.0", "python:3.11-slim", "pgvector/pgvector:0.8.1-pg18", "nginx:1.28"]
    out = {}
    for n in names:
        size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", n], capture_output=True,
                              text=True, check=True).stdout.strip()
        standin = subprocess.run(["docker", "image", "inspect", "-f", '{{index .Config.Labels "faceapi.standin"}}', n],
                                 capture_output=True, text=True).stdout.strip()
        out[n + (" (stand-in)" if standin == "true" and n != "faceapi:0.1.0" else "")] = round(int(size) / 1e6)
    return out


def verify_load(url: str, key: str, photo: bytes, clients: int, duration: float) -> dict:
    latencies, errors, lock = [], [], threading.Lock()
    end = time.monotonic() + duration

    def loop():
        with httpx.Client(timeout=120) as cl:
            while time.monotonic() < end:
                t = time.monotonic()
                r = cl.post(f"{url}/verify", headers={"X-API-Key": key}, data={"person_id": "bench-subject01"},
                            files={"image": ("p.png", photo, "image/png")})
                with lock:
                    (latencies if r.status_code == 200 else errors).append(
                        time.monotonic() - t if r.status_code == 200 else r.status_code)

    t0 = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "rps": len(latencies) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "errors": len(errors)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    from tests.docs import walkthrough

    c = Compose(free_port())
    sizes = image_sizes()
    try:
        t0 = time.monotonic()
        c("up", "-d", "--scale", "api=1")
        c.wait_ready()  # from `up` (containers created, empty volume) to ready through the proxy
        cold = time.monotonic() - t0
        mem_ready = memory(c)
        python = f"docker compose -p {PROJECT} exec -T api python"
        steps = [s for _, s in walkthrough.all_steps()]
        walkthrough.run_steps(steps, c.url, python, c.env)
        mem_walk = memory(c)
        admin = c("exec", "-T", "api", "python", "-m", "app", "keys", "create", "--role", "admin").split()[-1]
        client = c("exec", "-T", "api", "python", "-m", "app", "keys", "create", "--role", "client").split()[-1]
        r = httpx.post(f"{c.url}/enroll", headers={"X-API-Key": admin}, data={"person_id": "bench-subject01"},
                       files={"image": ("a.png", (YALE / "subject01.normal.png").read_bytes(), "image/png")}, timeout=60)
        assert r.status_code == 201, r.text
        photo = (YALE / "subject01.happy.png").read_bytes()
        one = verify_load(c.url, client, photo, args.clients, args.duration)
        mem_one = memory(c)
        c("up", "-d", "--scale", "api=2", "--wait", "--no-recreate")
        c("restart", "proxy")  # nginx resolves `api` when it starts
        c.wait_ready()
        two = verify_load(c.url, client, photo, args.clients, args.duration)
        mem_two = memory(c)
    finally:
        subprocess.run(["docker", "compose", "-p", PROJECT, "down", "-v"], cwd=REPO_ROOT, env=c.env,
                       capture_output=True)

    cpus = os.cpu_count()
    lines = [
        "## Docker Compose stack (`bench/compose.py`)",
        "",
        f"`flock /tmp/timing.lock python bench/compose.py --clients {args.clients} --duration {args.duration:g}"
        f"{' --write-docs' if args.write_docs else ''}` on {cpus} CPU cores, the images built beforehand",
        "([operations.md](operations.md#docker-compose)).",
        "",
        "| image | size (MB) |", "|---|---:|",
        *[f"| {n} | {s} |" for n, s in sizes.items()],
        "",
        f"Cold start, `docker compose up -d` on an empty volume (initdb included) to /health/ready "
        f"answering 200 through the proxy: **{cold:.1f} s**.",
        "",
        "| resident memory (MiB) | at ready | after the walkthrough | after the 1-replica load | with 2 replicas, after their load |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in sorted(set(mem_ready) | set(mem_two)):
        cells = [mem.get(name, "-") for mem in (mem_ready, mem_walk, mem_one, mem_two)]
        lines.append(f"| {name} | " + " | ".join(str(x) for x in cells) + " |")
    lines += [
        "",
        f"/verify through the proxy, {args.clients} clients, {args.duration:g} s each:",
        "",
        "| api replicas | requests | requests/s | p50 ms | p99 ms | errors |", "|---:|---:|---:|---:|---:|---:|",
        *[f"| {n} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} |"
          for n, r in ((1, one), (2, two))],
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_docs:
        write_docs_block("compose", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
