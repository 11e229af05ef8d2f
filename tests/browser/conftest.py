"""A real HTTP server (uvicorn in a thread, with the real model) and Debian's
headless Chromium driven by Playwright. Playwright's own browser download is never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.config import REPO_ROOT, Settings
from tests.conftest import add_keys, migrated_sqlite_url, serve_in_thread

CHROMIUM = os.environ.get("FACEAPI_CHROMIUM", "/usr/bin/chromium")
# the flags that keep Chromium off this machine's closed network (see .ci/run)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 # a synthetic webcam (a moving test pattern), for the page's "take a photo"
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
ARTEFACTS = REPO_ROOT / "test-artifacts" / "browser"  # screenshots; in .gitignore


def _need_browser() -> None:
    missing = None
    if not Path(CHROMIUM).is_file():
        missing = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test under CI=true: {missing}")
        pytest.skip(missing)


class LiveServer:
    def __init__(self, url: str, admin_key: str, client_key: str) -> None:
        self.url, self.admin_key, self.client_key = url, admin_key, client_key


@pytest.fixture
def live_server(tmp_path, real_embedder, real_detector):
    from app.main import create_app

    database_url = migrated_sqlite_url(tmp_path)
    admin_key, client_key = add_keys(database_url)
    app = create_app(Settings(database_url=database_url), embedder=real_embedder, detector=real_detector)
    with serve_in_thread(app) as url:
        yield LiveServer(url, admin_key, client_key)


@pytest.fixture
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS
