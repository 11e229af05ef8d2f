"""The app factory. `create_app()` builds a FastAPI app from settings; dependencies
(embedder, detector) can be passed in, which is how API-shape tests use a fake model.

Start-up: the schema must already be at the Alembic head (the app runs no DDL;
`python -m app migrate` does). The models load and run one warm-up batch in the
background: /health/live answers at once, /health/ready only once the model is warm.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from app.api.demo import install_demo
from app.api.docs import install_docs
from app.api.routes import health, persons, verification
from app.core import errors
from app.core.config import Settings, load_settings
from app.core.db import make_engine
from app.core.migrate import current_revision, head_revision
from app.core.ratelimit import RateLimiter
from app.core.telemetry import Metrics, request_id_var
from app.inference.artifacts import build_embedder, load_artifact
from app.inference.embedder import Embedder
from app.inference.worker import BatchingWorker
from app.repositories import PersonStore
from app.runtime import Runtime
from app.vision.decode import DecodeLimits
from app.vision.detect import FaceDetector, MTCNNDetector
from app.vision.pipeline import FacePipeline

log = logging.getLogger("app")


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None,
               detector: FaceDetector | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = _open_runtime(settings)
        app.state.runtime = runtime
        warm_task = asyncio.create_task(_warm_up(runtime, settings, embedder, detector))
        try:
            yield
        finally:
            warm_task.cancel()
            if runtime.worker is not None:
                await runtime.worker.stop()  # drain queued requests
            if runtime.detect_pool is not None:
                runtime.detect_pool.shutdown(wait=True)
            runtime.engine.dispose()

    app = FastAPI(
        title="Face verification API",
        version="0.1.0",
        summary="Enroll a person from one photo, verify (1:1) and identify (1:N).",
        description="Errors are application/problem+json with a stable `code`. Send the API key "
                    "in `X-API-Key`. Photos are never stored; one embedding per person is.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # offline pages instead (app/api/docs.py)
    )
    errors.install_error_handlers(app)
    app.include_router(persons.router)
    app.include_router(verification.router)
    app.include_router(health.router)
    install_docs(app)
    install_demo(app)
    _install_middleware(app, settings)
    return app


def _open_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.database_url)
    current, head = current_revision(engine), head_revision()
    if current != head:
        engine.dispose()
        raise RuntimeError(f"database schema is at {current or 'nothing'}, the code needs {head}: "
                           "run `python -m app migrate` first")
    artifact = load_artifact(settings.model_dir())
    artifact.threshold_for(settings.threshold_policy)  # fail at start, not per request
    limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
    return Runtime(settings=settings, engine=engine, artifact=artifact, metrics=Metrics(),
                   rate_limiter=limiter)


async def _warm_up(runtime: Runtime, settings: Settings, embedder: Embedder | None,
                   detector: FaceDetector | None) -> None:
    """Load the models off the event loop, run one batch through each, then say ready."""
    try:
        loop = asyncio.get_running_loop()
        if embedder is None:
            if settings.embedder_url:
                from app.inference.remote import RemoteEmbedder

                embedder = RemoteEmbedder(settings.embedder_url, runtime.artifact)
            else:
                embedder = await loop.run_in_executor(None, build_embedder, runtime.artifact)
        if detector is None:
            detector = await loop.run_in_executor(
                None, lambda: MTCNNDetector(settings.detect_max_side, min_face_size=settings.min_face_size))
        store = PersonStore(runtime.engine, embedder.model_version, embedder.embedding_dim,
                            settings.hnsw_ef_search)
        await loop.run_in_executor(None, store.load_index)
        worker = BatchingWorker(embedder, settings.batch_max_size, settings.batch_max_wait_ms,
                                on_batch=runtime.metrics.observe_batch)
        await worker.start()
        blank = np.full((2, embedder.input_size, embedder.input_size, 3), 127, np.uint8)
        await worker.run_direct(blank)
        await loop.run_in_executor(None, detector.detect, np.full((240, 320, 3), 127, np.uint8))
        runtime.embedder, runtime.store, runtime.worker = embedder, store, worker
        runtime.detect_pool = ThreadPoolExecutor(settings.detect_threads, thread_name_prefix="detect")
        runtime.pipeline = FacePipeline(
            detector, DecodeLimits(settings.max_upload_bytes, settings.max_pixels, settings.min_image_side),
            settings.min_face_size)
        stale = await loop.run_in_executor(None, store.count_other_versions)
        if stale:
            log.warning("%d persons were enrolled with another model version; they are not searched "
                        "until re-enrolled", stale)
        if runtime.artifact.impostor_tail is None:
            log.warning("model %s has no impostor_tail in its metadata.json: identify uses the 1:1 "
                        "threshold for every gallery size, so strangers are named more often as the "
                        "gallery grows; re-tune it (python -m model faces tune-threshold)",
                        runtime.artifact.model_version)
        runtime.warm.set()
        log.info("ready: model %s, threshold %.4f (%s), %s persons indexed", embedder.model_version,
                 runtime.threshold, runtime.threshold_origin,
                 len(store.index) if store.index is not None else "pgvector")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # stay alive and say why in /health/ready
        runtime.startup_error = f"model start-up failed: {exc}"
        log.exception("model start-up failed")


BODY_LIMIT_EXCEEDED = errors.BODY_LIMIT_EXCEEDED


class BodyLimit:
    """Pure ASGI middleware: refuse a body over the limit as it streams in (413),
    without reading it all. The limit allows for base64's 4/3 and form overhead."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_problem(scope, send, errors.PayloadTooLarge(
                f"The body is {int(declared)} bytes; the limit is {self.max_bytes} bytes"))
        seen, exceeded = 0, False

        async def limited_receive():
            # Raising here escapes through BaseHTTPMiddleware's task group as a 500. Instead the
            # app is told the client went away (it stops reading), and the flag turns the
            # resulting ClientDisconnect into a 413 (app.core.errors).
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    scope.setdefault("state", {})[BODY_LIMIT_EXCEEDED] = self.max_bytes
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, limited_receive, send)


async def _send_problem(scope, send, exc: errors.DomainError) -> None:
    response = errors.problem(exc.status, exc.code, exc.title, exc.detail, scope.get("path", ""))
    await response({"type": "http"}, None, send)


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    access = logging.getLogger("app.access")

    @app.middleware("http")
    async def request_context(request: Request, call_next):
        rid = request.headers.get("x-request-id", "")
        rid = rid if rid.isascii() and rid.replace("-", "").isalnum() and len(rid) <= 64 else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            runtime = getattr(request.app.state, "runtime", None)
            if runtime is not None:
                runtime.metrics.requests.labels(request.method, path, str(status)).inc()
                runtime.metrics.latency.labels(request.method, path).observe(elapsed)
            access.info("%s %s %s", request.method, path, status,
                        extra={"method": request.method, "route": path, "status": status,
                               "ms": round(elapsed * 1e3, 1)})
            request_id_var.reset(token)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["X-API-Key", "Content-Type"])
    body_limit = settings.max_upload_bytes * 4 // 3 + 64 * 1024
    app.add_middleware(BodyLimit, max_bytes=body_limit)
