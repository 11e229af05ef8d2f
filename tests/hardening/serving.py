"""The real server process (`python -m app serve`) for fault tests: started with its own
FACEAPI_* settings, its log in a file, and stopped (or found dead) at the end."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.core.config import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def serve(tmp: Path, database_url: str, wait_for: str = "/health/ready", timeout_s: float = 300,
          **settings: str):
    """`python -m app serve` on a free port with FACEAPI_DATABASE_URL and the given settings
    (FACEAPI_ + the upper-cased name); yields once `wait_for` answers 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAPI_")}
    env.update(FACEAPI_DATABASE_URL=database_url, FACEAPI_LOG_LEVEL="INFO", FACEAPI_LOG_JSON="false",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    env.update({f"FACEAPI_{k.upper()}": str(v) for k, v in settings.items()})
    log_path = tmp / f"serve-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    served = Served(proc, port, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, served.log()
            assert time.monotonic() < deadline, f"{wait_for} not 200 in {timeout_s} s\n{served.log()}"
            try:
                if httpx.get(served.base_url + wait_for, timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
