"""`python -m app serve` on a fresh machine (an empty model cache) with the default runtime: it
builds the LiteRT models once in a child process, then serves enroll and verify on real photos
without TensorFlow ever loaded in the service process. Checked from outside the process: the
native libraries it has mapped (/proc/PID/maps: importing TensorFlow or Keras maps
tensorflow/python/_pywrap_tensorflow_internal.so and libtensorflow_framework), and from inside
it: its ready log line reports `"tensorflow" in sys.modules or "keras" in sys.modules`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.core.config import REPO_ROOT
from tests.api.test_faces_end_to_end import OTHERS
from tests.conftest import migrated_sqlite_url, yale_bytes
from tests.hardening.test_warmup_server import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")


def tensorflow_libraries(pid: int) -> set[str]:
    """Mapped files of `pid` that belong to TensorFlow (any file under a tensorflow/ package)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in maps if "/tensorflow/" in line or "libtensorflow" in line}


def test_serve_on_litert_builds_the_cache_once_and_never_imports_tensorflow(tmp_path):
    cache = tmp_path / "models"  # empty: what a fresh machine has after `migrate`
    url = migrated_sqlite_url(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAPI_")}
    env.update(FACEAPI_DATABASE_URL=url, FACEAPI_AUTH_DISABLED="true", FACEAPI_MODEL_CACHE_DIR=str(cache),
               FACEAPI_LOG_JSON="false", TF_CPP_MIN_LOG_LEVEL="2")
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60) as http:
            deadline = time.monotonic() + 600  # includes the one-off build (~15-40 s here)
            while True:
                assert time.monotonic() < deadline, "not ready in 600 s"
                assert proc.poll() is None, log_path.read_text()
                try:
                    r = http.get(base + "/health/ready")
                    if r.status_code == 200:
                        break
                    assert "error" not in r.json().get("checks", {}), log_path.read_text()
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            runtime = http.get(base + "/model").json()["runtime"]
            assert runtime["name"] == "litert", runtime
            r = http.post(base + "/enroll", data={"person_id": "s1"},
                          files={"image": ("p.png", yale_bytes("subject01.normal"))})
            assert r.status_code == 201, r.text
            same = http.post(base + "/verify", data={"person_id": "s1"},
                             files={"image": ("p.png", yale_bytes("subject01.happy"))}).json()
            other = http.post(base + "/verify", data={"person_id": "s1"},
                              files={"image": ("p.png", yale_bytes(f"{OTHERS[0]}.normal"))}).json()
            assert same["match"] is True and other["match"] is False, (same, other)
            loaded = tensorflow_libraries(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    text = log_path.read_text()
    assert not loaded, f"the serve process mapped TensorFlow: {sorted(loaded)[:3]}"
    assert "TensorFlow imported: no" in text, text[-2000:]
    assert "building it once" in text and "LiteRT models built" in text, text[-2000:]
    built = sorted(p.name for p in cache.glob("*.tflite"))
    assert [n.split("-")[0] for n in built] == ["dlib", "sface"], built
    # one sidecar per net, and the manifest naming the converter (a process without TensorFlow
    # keys the cache by it)
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.json")) == ["converter.json", "dlib", "sface"]


def test_the_check_sees_tensorflow_when_it_is_loaded():
    """The /proc check is not vacuous: a process that imports TensorFlow maps its libraries."""
    code = "import os, sys; import tensorflow; print(os.getpid()); sys.stdout.flush(); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, text=True)
    try:
        pid = int(proc.stdout.readline())
        assert tensorflow_libraries(pid)
    finally:
        proc.stdin.close()
        proc.wait(60)
