"""What request handlers share, built once per app (app/startup.py) and handed to them
through dependencies (app/api/deps.py).

From the first second the database-backed parts work (API keys, rate limits, the person
records); the face use cases are `Runtime.models`, whose phase goes from loading to ready (the
models loaded and warm) or failed, and whose services exist only once ready.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sqlalchemy import Engine

from app.domain import errors
from app.core.config import Settings
from app.core.db import ping
from app.core.pools import BoundedPool
from app.core.ratelimit import RateLimiter, RecentSet
from app.core.telemetry import Metrics
from app.inference.artifacts import ModelArtifact
from app.inference.runtimes import RuntimeChoice
from app.inference.worker import BatchingWorker
from app.storage.keys import ApiKeyStore
from app.storage.persons import PersonStore
from app.services.faces import FaceService
from app.services.threshold import ThresholdPolicy

NOT_READY = "The model is still loading; retry shortly"
START_FAILED = "The model could not be started; the operator has been told (server log)"


class Phase(enum.Enum):
    loading = "loading"  # the warm-up is loading the models (from the start)
    ready = "ready"  # loaded and warm: the services are there
    failed = "failed"  # the warm-up failed; the reason is in the log only, never in a response


@dataclass(frozen=True)
class ModelServices:
    """What the warm-up builds: the face use cases and the two queues they run in."""

    faces: FaceService
    worker: BatchingWorker
    detect_pool: BoundedPool


class Models:
    """The model services and their phase, one state set once by the warm-up: loading, then
    ready (with the services) or failed. Read from request handlers and, by `python -m app
    serve`'s progress line, from another thread: the phase and the services change together,
    in one assignment."""

    def __init__(self) -> None:
        self._state: tuple[Phase, ModelServices | None] = (Phase.loading, None)

    @property
    def phase(self) -> Phase:
        return self._state[0]

    def ready(self, services: ModelServices) -> None:
        self._state = (Phase.ready, services)

    def failed(self) -> None:
        self._state = (Phase.failed, None)

    @property
    def services(self) -> ModelServices | None:
        """The services when ready, else None."""
        return self._state[1]

    def require(self) -> ModelServices:
        """The services; NotReady (503 `not_ready`, with Retry-After) until the phase is ready."""
        phase, services = self._state
        if services is None:
            raise errors.NotReady(START_FAILED if phase is Phase.failed else NOT_READY)
        return services


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    artifact: ModelArtifact
    metrics: Metrics
    keys: ApiKeyStore
    store: PersonStore
    threshold: ThresholdPolicy
    model_version: str
    failed_auth: RateLimiter  # failed key checks per client address
    inference: RuntimeChoice  # what runs the embedder (litert | keras | remote) and why
    rate_limiter: RateLimiter | None = None  # per key; None when FACEAPI_RATE_LIMIT_PER_MINUTE is 0
    # digests of keys recently found wrong: a key is random, so a wrong one stays wrong
    wrong_keys: RecentSet = field(default_factory=RecentSet)
    models: Models = field(default_factory=Models)  # loading, then ready or failed (app/startup.py)

    def require_faces(self) -> FaceService:
        return self.models.require().faces

    def database_ok(self) -> bool:
        return ping(self.engine)
