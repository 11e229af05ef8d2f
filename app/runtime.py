"""What request handlers share, built once per app (app/startup.py) and handed to them
through dependencies (app/api/deps.py).

Two phases: from the first second the database-backed parts work (API keys, rate limits,
the person records); the face use cases appear once the models are loaded and warm.
"""

from __future__ import annotations

import asyncio
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
    # set by the warm-up
    faces: FaceService | None = None
    worker: BatchingWorker | None = None
    detect_pool: BoundedPool | None = None
    warm: asyncio.Event = field(default_factory=asyncio.Event)
    startup_failed: bool = False  # the reason is in the log only, never in a response

    def require_faces(self) -> FaceService:
        if self.faces is None or not self.warm.is_set():
            raise errors.NotReady(START_FAILED if self.startup_failed else NOT_READY)
        return self.faces

    def database_ok(self) -> bool:
        return ping(self.engine)
