"""API keys an operator can manage: `python -m app keys create|list|revoke`, revocation at
once, a first-run step that creates an admin key only when none exists, and keys that work
without the model."""

from __future__ import annotations

import os
import subprocess
import sys

from fastapi.testclient import TestClient

from app.core.config import REPO_ROOT, Settings
from app.main import create_app
from app.runtime import Phase
from tests.conftest import FakeDetector, FakeEmbedder, migrated_sqlite_url


def cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAPI_")}
    env["FACEAPI_DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=check)


def test_create_list_revoke_from_the_command_line(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    admin = cli(url, "keys", "create", "--role", "admin").stdout.strip().splitlines()[-1]
    client = cli(url, "create-key", "--role", "client").stdout.strip().splitlines()[-1]  # the old name
    assert admin.startswith("fa_") and client.startswith("fa_") and admin != client
    app = create_app(Settings(database_url=url), embedder=FakeEmbedder(), detector=FakeDetector())
    with TestClient(app) as http:
        assert http.get("/persons", headers={"X-API-Key": client}).status_code == 200  # marks it used
        listing = cli(url, "keys", "list").stdout
        rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
        assert set(rows) == {admin[:12], client[:12]}  # prefixes only, never a whole key
        assert admin not in listing and client not in listing
        assert rows[client[:12]].split()[1] == "client" and rows[admin[:12]].split()[1] == "admin"
        assert rows[admin[:12]].split()[-2:] == ["-", "-"]  # never used, not revoked
        assert rows[client[:12]].split()[-1] == "-" and rows[client[:12]].count(":") == 4  # used at hh:mm:ss

        out = cli(url, "keys", "revoke", client[:12]).stdout
        assert "revoked" in out
        # effective at once, in the running server: no restart, no cache to expire
        r = http.get("/persons", headers={"X-API-Key": client})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        assert http.get("/persons", headers={"X-API-Key": admin}).status_code == 200
    assert client[:12] not in cli(url, "keys", "list").stdout
    assert client[:12] in cli(url, "keys", "list", "--all").stdout
    missing = cli(url, "keys", "revoke", "fa_nosuchkey", check=False)
    assert missing.returncode == 1 and "No active key" in missing.stderr


def test_first_run_step_creates_an_admin_key_only_once(tmp_path):
    url = migrated_sqlite_url(tmp_path)
    first = cli(url, "keys", "create", "--role", "admin", "--if-none").stdout.strip().splitlines()[-1]
    again = cli(url, "keys", "create", "--role", "admin", "--if-none").stdout
    assert first.startswith("fa_") and "fa_" not in again and "exists" in again
    assert len(cli(url, "keys", "list").stdout.strip().splitlines()) == 2  # header + one key


def test_keys_work_while_the_model_cannot_start(tmp_path):
    """Keys need only the database: with a model that never becomes ready, a valid key still
    reads persons (200), a wrong one is a 401, and model routes are a 503, not a 500."""
    from tests.conftest import add_keys

    class Broken(FakeEmbedder):
        def embed(self, faces):
            raise RuntimeError("secret internal detail: /opt/models/weights.bin is corrupt")

    url = migrated_sqlite_url(tmp_path)
    admin, client = add_keys(url)
    app = create_app(Settings(database_url=url), embedder=Broken(), detector=FakeDetector())
    with TestClient(app) as http:
        import time

        deadline = time.monotonic() + 120  # the warm-up fails in the background: wait for it
        while app.state.runtime.models.phase is not Phase.failed:
            assert time.monotonic() < deadline, "the failing warm-up was never reported"
            time.sleep(0.02)
        assert http.get("/persons", headers={"X-API-Key": client}).status_code == 200
        assert http.get("/persons", headers={"X-API-Key": "fa_" + "X" * 43}).status_code == 401
        r = http.post("/verify", data={"person_id": "p"}, files={"image": ("p.png", b"x")},
                      headers={"X-API-Key": client})
        assert r.status_code == 503 and r.json()["code"] == "not_ready" and r.headers["Retry-After"]
        ready = http.get("/health/ready")
        # the reason is for the operator's log, never for anonymous callers
        assert ready.status_code == 503 and ready.json()["checks"]["error"]
        for text in (r.text, ready.text):
            assert "secret" not in text and "weights.bin" not in text and "RuntimeError" not in text


def test_a_request_records_its_key_by_the_prefix_the_listing_shows(tmp_path):
    """One length for a key's prefix (app.core.security.KEY_PREFIX_CHARS): the prefix the
    authenticated request records is the one `keys list` shows and `keys revoke` takes."""
    from app.core.security import KEY_PREFIX_CHARS

    url = migrated_sqlite_url(tmp_path)
    key = cli(url, "keys", "create", "--role", "client").stdout.strip().splitlines()[-1]
    listed = cli(url, "keys", "list").stdout.splitlines()[1].split()[0]
    assert listed == key[:KEY_PREFIX_CHARS] and len(listed) == KEY_PREFIX_CHARS
    app = create_app(Settings(database_url=url), embedder=FakeEmbedder(), detector=FakeDetector())
    seen: list[str | None] = []

    @app.middleware("http")
    async def _record(request, call_next):
        response = await call_next(request)
        seen.append(getattr(request.state, "api_key_prefix", None))
        return response

    with TestClient(app) as http:
        assert http.get("/persons", headers={"X-API-Key": key}).status_code == 200
    assert seen == [listed]
