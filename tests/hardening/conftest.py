"""Helpers for the hardening suite: a real uvicorn server on 127.0.0.1 in a thread (so
requests cross a real socket and run truly concurrently), keys, and a private migrated
SQLite database per module."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from app.core.config import Settings
from tests.conftest import FakeDetector, FakeEmbedder, add_keys, migrated_sqlite_url


@dataclass
class Live:
    base_url: str
    admin_key: str
    client_key: str
    app: object

    @property
    def admin(self) -> dict:
        return {"X-API-Key": self.admin_key}

    @property
    def client(self) -> dict:
        return {"X-API-Key": self.client_key}

    @property
    def runtime(self):
        return self.app.state.runtime


@contextlib.contextmanager
def serve_in_thread(app, ready_timeout: float = 120.0):
    """Run `app` under uvicorn on a free 127.0.0.1 port; yield its base URL once /health/ready is 200."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False,
                                           timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            try:
                r = httpx.get(base + "/health/ready", timeout=5)
                if r.status_code == 200:
                    break
                if "error" in r.json().get("checks", {}):
                    raise RuntimeError(r.json()["checks"]["error"])
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server not ready")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextlib.contextmanager
def live_app(database_url: str, embedder=None, detector=None, **settings):
    """A live server with fake (API-shape) model parts unless real ones are passed."""
    from app.main import create_app

    admin_key, client_key = add_keys(database_url)
    app = create_app(Settings(database_url=database_url, **settings),
                     embedder=embedder or FakeEmbedder(), detector=detector or FakeDetector())
    with serve_in_thread(app) as base:
        yield Live(base, admin_key, client_key, app)


@pytest.fixture
def fake_live(tmp_path):
    with live_app(migrated_sqlite_url(tmp_path)) as live:
        yield live
