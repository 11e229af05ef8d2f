"""The app factory. `create_app()` builds a FastAPI app from settings; dependencies
(embedder, detector) can be passed in, which is how API-shape tests use a fake model.

Start-up (app/startup.py): the schema must already be at the Alembic head (the app runs no
DDL; `python -m app migrate` does). Keys and person records work at once; the models load
and run one warm-up batch in the background, and /health/ready says yes only then.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api.demo import install_demo
from app.api.docs import install_docs
from app.api.middleware import BodyLimit, HeadAsGet, RequestContext, TrailingSlash
from app.api.problems import install_error_handlers
from app.api.routes import health, persons, verification
from app.core.config import Settings, load_settings
from app.inference.embedder import Embedder
from app.startup import close_runtime, open_runtime, warm_up
from app.vision.detect import FaceDetector


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None,
               detector: FaceDetector | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = open_runtime(settings, embedder)
        app.state.runtime = runtime
        warm_task = asyncio.create_task(warm_up(runtime, embedder, detector))
        try:
            yield
        finally:
            warm_task.cancel()  # a warm-up still loading closes what it had started
            with contextlib.suppress(asyncio.CancelledError):
                await warm_task
            await close_runtime(runtime)

    app = FastAPI(
        title="Face verification API",
        version="0.1.0",
        summary="Enroll a person from one photo, verify (1:1) and identify (1:N).",
        description="Errors are application/problem+json with a stable `code`. Send the API key "
                    "in `X-API-Key`. Photos are never stored; one embedding per person is.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # offline pages instead (app/api/docs.py)
    )
    install_error_handlers(app)
    app.include_router(persons.router)
    app.include_router(verification.router)
    app.include_router(health.router)
    install_docs(app)
    install_demo(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["X-API-Key", "Content-Type"])
    app.add_middleware(HeadAsGet)
    app.add_middleware(TrailingSlash)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       max_inflight_bytes=settings.max_inflight_body_bytes,
                       max_inflight_bytes_per_client=settings.max_inflight_body_bytes_per_client)
    # added last, so outermost: it sees every response, the 413s of BodyLimit included
    app.add_middleware(RequestContext, metrics_of=lambda: _metrics(app))
    return app


def _metrics(app: FastAPI):
    runtime = getattr(app.state, "runtime", None)
    return runtime.metrics if runtime is not None else None
