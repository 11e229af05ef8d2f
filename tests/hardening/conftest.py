"""Helpers for the hardening suite: a real uvicorn server on 127.0.0.1 in a thread (so
requests cross a real socket and run truly concurrently), keys, and a private migrated
SQLite database per module."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest

from app.core.config import Settings
from tests.conftest import FakeDetector, FakeEmbedder, add_keys, migrated_sqlite_url, serve_in_thread


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
