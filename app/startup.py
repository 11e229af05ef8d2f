"""Start-up, in two phases.

`open_runtime` (synchronous, before the first request): the database at the Alembic head,
the model artefact, the threshold, the embedding size held by the database against the
model's, the key and person stores. Anything wrong here stops the start with a message.

`warm_up` (background): load the models, run one batch through each, then hand the face
use cases to `runtime.models` and say ready. A failure here keeps the process alive (keys and
person records still work), closes what the warm-up had started and is logged; /health/ready
and the model routes say only that it failed.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from app.core.config import Settings
from app.core.db import make_engine
from app.core.migrate import current_revision, head_revision
from app.core.pools import BoundedPool
from app.core.ratelimit import RateLimiter
from app.core.telemetry import Metrics
from app.inference.artifacts import load_artifact
from app.inference.embedder import Embedder
from app.inference.runtimes import (
    RuntimeChoice, RuntimeChoiceError, build_for, choose_runtime, tensorflow_imported,
)
from app.inference.worker import BatchingWorker
from app.storage.keys import ApiKeyStore
from app.storage.persons import PersonStore
from app.runtime import ModelServices, Runtime
from app.services.faces import FaceService
from app.services.threshold import ThresholdPolicy
from app.vision.decode import DecodeLimits, decoded_pixels
from app.vision.detect import FaceDetector, YuNetDetector
from app.vision.pipeline import EnrollRules, FacePipeline

log = logging.getLogger("app.startup")


class StartupError(RuntimeError):
    """The service cannot start as configured; the message says what to do."""


def open_runtime(settings: Settings, embedder: Embedder | None = None) -> Runtime:
    engine = make_engine(settings.database_url, settings.database_timeout_s)
    try:
        current, head = current_revision(engine), head_revision()
        if current != head:
            raise StartupError(f"database schema is at {current or 'nothing'}, the code needs {head}: "
                               "run `python -m app migrate` first")
        artifact = load_artifact(settings.model_dir())
        threshold = ThresholdPolicy.choose(artifact, settings.threshold_policy, settings.threshold,
                                           settings.identify_fpir)
        # an injected embedder (tests) names its own version; the artefact names the real one's
        model_version = embedder.model_version if embedder else artifact.model_version
        dim = embedder.embedding_dim if embedder else artifact.embedding_dim
        store = PersonStore(engine, model_version, dim, settings.hnsw_ef_search)
        check_embedding_size(store, dim, settings.model)
        try:
            choice = (RuntimeChoice("given", "an embedder object was handed to create_app") if embedder
                      else choose_runtime(settings, artifact))
        except RuntimeChoiceError as exc:
            raise StartupError(str(exc)) from None
    except BaseException:
        engine.dispose()
        raise
    per_key = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
    return Runtime(settings=settings, engine=engine, artifact=artifact, metrics=Metrics(),
                   keys=ApiKeyStore(engine), store=store, threshold=threshold,
                   model_version=model_version, inference=choice,
                   failed_auth=RateLimiter(settings.auth_failures_per_minute), rate_limiter=per_key)


def check_embedding_size(store: PersonStore, model_dim: int, model_name: str) -> None:
    """The database's embedding columns hold `embedding_width.dim` values (migration 0005); a
    model of another width could neither store nor compare, so the start stops and says what to do."""
    width = store.stored_width()
    if width is None:
        raise StartupError("the database has no embedding_width row (migration 0005): "
                           "run `python -m app migrate` first")
    stored, made_for = width
    if stored == model_dim:
        return
    versions = store.stored_versions()
    held = (", ".join(f"{n} with {v!r}" for v, n in sorted(versions.items())) if versions
            else "no persons yet")
    raise StartupError(
        f"the database stores {stored}-value embeddings (set up for model {made_for!r}; persons: {held}) "
        f"but model {model_name!r} makes {model_dim}-value ones. Either start with the model the rows "
        f"were made with (FACEAPI_MODEL={made_for}), or use a new database for {model_name!r} "
        f"(FACEAPI_DATABASE_URL=<new>, FACEAPI_MODEL={model_name} python -m app migrate) and enroll "
        f"the persons again there")


async def warm_up(runtime: Runtime, embedder: Embedder | None, detector: FaceDetector | None) -> None:
    """Load the models off the event loop, run one batch through each, then say ready."""
    settings = runtime.settings
    log.info("embedder runtime %s: %s", runtime.inference.name, runtime.inference.reason)
    worker = pool = None  # started here: closed here unless handed over as ready services
    try:
        if embedder is None:
            embedder = await asyncio.to_thread(_build_embedder, runtime)
        if detector is None:
            detector = await asyncio.to_thread(YuNetDetector, input_side=settings.detect_max_side)
        await asyncio.to_thread(runtime.store.load_index)
        pool = BoundedPool(settings.detect_threads, settings.detect_queue_max, "detection",
                           max_cost=settings.detect_max_inflight_pixels, unit="pixels")
        # a face is worth waiting for only while another request is in detection
        worker = BatchingWorker(embedder, settings.batch_max_size, settings.batch_max_wait_ms,
                                on_batch=runtime.metrics.observe_batch, max_queue=settings.embed_queue_max,
                                more_coming=lambda: pool.pending > 0)
        await worker.start()
        if embedder.input_size != runtime.artifact.alignment.size:
            raise StartupError(f"the embedder takes {embedder.input_size} px faces but the artefact's "
                               f"alignment makes {runtime.artifact.alignment.size} px ones")
        blank = np.full((2, embedder.input_size, embedder.input_size, 3), 127, np.uint8)
        await worker.run_direct(blank)
        await asyncio.to_thread(detector.detect, np.full((240, 320, 3), 127, np.uint8))
        pipeline = FacePipeline(
            detector, DecodeLimits(settings.max_upload_bytes, settings.max_pixels, settings.min_image_side),
            runtime.artifact.alignment,
            EnrollRules(settings.min_face_size, settings.enroll_min_score, settings.enroll_dominance_ratio),
            reduce_to=settings.detect_max_side)  # a large JPEG is first decoded near the first pass's size
        faces = FaceService(runtime.store, PooledReader(pipeline, pool), worker.embed,
                            runtime.threshold, runtime.model_version, settings.identify_all_faces_max)
        stale = await asyncio.to_thread(runtime.store.count_other_versions)
        if stale:
            log.warning("%d persons were enrolled with another model version; they are not searched "
                        "until re-enrolled", stale)
        if runtime.artifact.impostor_tail is None:
            log.warning("model %s has no impostor_tail in its metadata.json: identify uses the 1:1 "
                        "threshold for every gallery size, so strangers are named more often as the "
                        "gallery grows; re-tune it (python -m model faces tune-threshold)",
                        runtime.artifact.model_version)
        if runtime.artifact.template_calibration is None:
            log.warning("model %s has no template_calibration in its metadata.json: persons with "
                        "several photos are judged by the one-photo threshold, which accepts more "
                        "impostors as their templates grow; calibrate it (python bench/templates.py "
                        "calibrate)", runtime.artifact.model_version)
        resident = runtime.store.index.resident()  # None on PostgreSQL: the database is the index
        log.info("ready: model %s on %s, threshold %.4f (%s), %s persons indexed; TensorFlow imported: %s",
                 runtime.model_version, runtime.inference.name, runtime.threshold.value,
                 runtime.threshold.origin,
                 "pgvector" if resident is None else resident,
                 "yes" if tensorflow_imported() else "no")
        runtime.models.ready(ModelServices(faces, worker, pool))  # last: nothing after it can fail
    except asyncio.CancelledError:  # the app stops before the models were ready
        await _close_parts(worker, pool)
        raise
    except Exception:  # stay alive for keys and records; the reason goes to the log only
        log.exception("model start-up failed")
        runtime.models.failed()
        try:
            await _close_parts(worker, pool)
        except Exception:
            log.exception("closing the half-started model services failed")


async def _close_parts(worker: BatchingWorker | None, pool: BoundedPool | None) -> None:
    if worker is not None:
        await worker.stop()  # drain queued requests
    if pool is not None:
        pool.shutdown()


class PooledReader:
    """The face pipeline run in the detection pool (its queue bound is the load shedding)."""

    def __init__(self, pipeline: FacePipeline, pool: BoundedPool) -> None:
        self.pipeline, self.pool = pipeline, pool

    async def one(self, image: bytes, enroll: bool, face_box=None):
        return await self.pool.run(self.pipeline.extract, image, enroll, face_box, cost=self._cost(image))

    async def all(self, image: bytes, limit: int):
        return await self.pool.run(self.pipeline.extract_all, image, limit, cost=self._cost(image))

    async def detect(self, image: bytes):
        return await self.pool.run(self.pipeline.detect, image, cost=self._cost(image))

    def _cost(self, image: bytes) -> int:
        """Admission is by the pixels the photo decodes to (read from its header), not by count."""
        return decoded_pixels(image, self.pipeline.reduce_to)


def _build_embedder(runtime: Runtime) -> Embedder:
    return build_for(runtime.inference, runtime.settings, runtime.artifact)


async def close_runtime(runtime: Runtime) -> None:
    """Stop the model services (when ready; a warm-up cut short closes its own parts) and the
    database."""
    services = runtime.models.services
    if services is not None:
        await _close_parts(services.worker, services.detect_pool)
    runtime.engine.dispose()


def preflight(settings: Settings) -> str | None:
    """What `open_runtime` would refuse, as one line for the operator (None: it can start)."""
    from app.inference.artifacts import ArtifactError

    try:
        runtime = open_runtime(settings)
    except (StartupError, ArtifactError) as exc:
        return str(exc)
    runtime.engine.dispose()
    return None
