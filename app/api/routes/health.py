"""Liveness, readiness (database reachable, model loaded and warm), model info, metrics."""

from __future__ import annotations


from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api import examples
from app.api.deps import RuntimeDep
from app.core.db import call, ping_within
from app.api.schemas import Health
from app.runtime import Phase

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Health, summary="The process is up",
            responses=examples.LIVE)
async def live() -> Health:
    return Health(status="ok")


@router.get("/health/ready", response_model=Health, summary="Database reachable, model warm",
            responses=examples.READY)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    database = await ping_within(runtime.engine)
    phase = runtime.models.phase
    model = phase is Phase.ready
    checks = {"database": database, "model": model, "model_version": runtime.model_version,
              "threshold": runtime.threshold.value}
    if phase is Phase.failed:  # the reason is in the server log, not for anonymous callers
        checks["error"] = "model start-up failed; see the server log"
    ok = database and model
    body = Health(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/model", summary="The running model, its 1:1 and 1:N thresholds and where they came from",
            responses=examples.MODEL_INFO)
async def model_info(runtime: RuntimeDep) -> dict:
    return {
        "model_version": runtime.model_version,
        "embedding_dim": runtime.artifact.embedding_dim,
        "metric": "cosine_distance",
        "threshold": runtime.threshold.value,
        "threshold_origin": runtime.threshold.origin,
        "threshold_criterion": runtime.threshold.criterion,
        "threshold_by_template_size": threshold_by_size(runtime.threshold),
        "artifact": runtime.artifact.path.name,
        "runtime": runtime.inference.as_dict(),  # litert | keras | remote, and why
        "provenance": runtime.artifact.threshold_provenance(),
        # provenance.test_metrics are at the max-accuracy threshold; these at the one in use
        "test_metrics_at_threshold": None if runtime.settings.threshold is not None
        else runtime.artifact.test_metrics_at(runtime.settings.threshold_policy),
        "identify": await call(runtime.engine, identify_info, runtime),  # may count (PostgreSQL)
    }


def threshold_by_size(policy) -> dict | None:
    """/verify's threshold for each template size the artefact calibrated (larger sizes use the
    largest's); None when it ships no calibration and every size uses `threshold`."""
    if policy.templates is None:
        return None
    return {str(k): policy.verify_threshold(k) for k in sorted(policy.templates.distances)}


def identify_info(runtime) -> dict:
    """How POST /identify decides now (the 1:1 `threshold` above is /verify's)."""
    d = runtime.threshold.for_identify(runtime.store.gallery_size())
    return {
        "threshold": d.threshold, "gallery_size": d.gallery_size, "target_fpir": d.target_fpir,
        "verify_threshold": d.verify_threshold, "threshold_source": d.source,
        "impostor_pair_rate": d.pair_rate, "extrapolated_beyond_measured_tail": d.extrapolated,
        "rule": "match when the nearest distance <= min(F^-1(1 - (1 - target_fpir)^(1/gallery_size)), "
                "verify_threshold), F = the artefact's impostor-pair distance CDF (provenance.impostor_tail)"
        if d.target_fpir is not None else
        "the artefact has no impostor tail: identify uses the 1:1 threshold, whatever the gallery size",
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses=examples.METRICS)
async def metrics(runtime: RuntimeDep) -> Response:
    services = runtime.models.services  # None until the models are ready
    runtime.metrics.queue_depth.set(services.worker.queue_depth if services else 0)
    runtime.metrics.detect_pending.set(services.detect_pool.pending if services else 0)
    resident = runtime.store.index.resident()  # None on PostgreSQL: the database is the index
    if resident is not None:
        runtime.metrics.enrolled.set(resident)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
