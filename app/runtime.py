"""Everything a request handler needs, built once per app in the lifespan and
passed to handlers through dependencies (app/api/deps.py)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine

from app.core import errors
from app.core.config import Settings
from app.core.ratelimit import RateLimiter
from app.core.db import ping
from app.core.telemetry import Metrics
from app.inference.artifacts import ModelArtifact
from app.inference.embedder import Embedder
from app.inference.worker import BatchingWorker
from app.repositories import PersonStore
from app.services.open_set import IdentifyThreshold, identify_threshold
from app.vision.pipeline import FacePipeline, FaceSample

log = logging.getLogger("app.runtime")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    artifact: ModelArtifact
    metrics: Metrics
    store: PersonStore | None = None
    pipeline: FacePipeline | None = None
    worker: BatchingWorker | None = None
    embedder: Embedder | None = None
    detect_pool: ThreadPoolExecutor | None = None
    warm: asyncio.Event = field(default_factory=asyncio.Event)
    startup_error: str | None = None
    rate_limiter: RateLimiter | None = None  # None when FACEAPI_RATE_LIMIT_PER_MINUTE is 0
    _identify_cache: tuple | None = None  # ((gallery size, 1:1 threshold), IdentifyThreshold)

    @property
    def threshold(self) -> float:
        if self.settings.threshold is not None:
            return self.settings.threshold
        return self.artifact.threshold_for(self.settings.threshold_policy)

    @property
    def threshold_origin(self) -> str:
        if self.settings.threshold is not None:
            return "settings (FACEAPI_THRESHOLD)"
        return f"model artefact, policy {self.settings.threshold_policy}"

    def identify_threshold(self) -> IdentifyThreshold:
        """The 1:N threshold for the current gallery size and FACEAPI_IDENTIFY_FPIR (O(1): the
        store keeps the count; the tail is a few dozen points)."""
        n = self.store.gallery_size() if self.store is not None else 0
        key = (n, self.threshold)
        cached = self._identify_cache
        if cached is None or cached[0] != key:
            cached = self._identify_cache = (key, identify_threshold(
                self.artifact.impostor_tail, self.settings.identify_fpir, n, self.threshold))
        return cached[1]

    @property
    def model_version(self) -> str:
        return self.embedder.model_version if self.embedder else self.artifact.model_version

    def require_ready(self) -> None:
        if not self.warm.is_set():
            raise errors.NotReady(self.startup_error or "The model is still loading; retry shortly")

    async def extract(self, data: bytes, enroll: bool) -> FaceSample:
        """Decode, detect and align in the detection thread pool (off the event loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.detect_pool, self.pipeline.extract, data, enroll)

    async def embed(self, sample: FaceSample) -> np.ndarray:
        return await self.worker.embed(sample.aligned)

    async def db(self, fn, *args):
        """Run a blocking store call in a thread; a lost database becomes a 503."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, fn, *args)

    def database_ok(self) -> bool:
        return ping(self.engine)
