"""OpenAPI `responses` for each route: an example for the success answer and for every
problem+json the route can send, grouped by status. Titles and codes come from the error
classes (app.core.errors), so the docs cannot drift from what the handlers send; a test
checks every example against its schema."""

from __future__ import annotations

import json
from collections import defaultdict

from app.api.problems import STATUS
from app.core import errors
from app.core.config import ARTIFACTS_DIR, Settings
from app.schemas import Problem

_DETAILS = {
    "image_missing": "Send the photo as the multipart file field `image`",
    "invalid_multipart": "The multipart body cannot be read: Invalid multipart data.",
    "invalid_base64": "image_base64 is not valid base64 (a data: URL prefix and line breaks are fine)",
    "unsupported_image_type": "The bytes are not a JPEG, PNG, WebP, BMP or GIF image",
    "image_corrupt": "The image could not be decoded: it is truncated or damaged",
    "image_too_small": "The image is 20x24 px; the smallest accepted side is 32 px",
    "image_too_many_pixels": "The image has 64000000 pixels; the limit is 40000000",
    "unsupported_media_type": "Send multipart/form-data (fields person_id, image) or "
                              "application/json (image_base64)",
    "payload_too_large": "The body is 20000000 bytes; the limit is 14045525 bytes",
    "no_face": "No face was found in the image; send a photo with one frontal face",
    "multiple_faces": "2 faces were found; enrolling needs a photo with exactly one face",
    "face_too_small": "The face is 14 px; enrolling needs at least 20 px",
    "low_quality": "Face detection confidence 0.91 is below 0.95; send a sharper, frontal photo",
    "person_not_found": "No person 'yale-01' is enrolled",
    "person_exists": "Person 'yale-01' is already enrolled; send replace=true to re-enroll",
    "model_version_mismatch": "'yale-01' was enrolled with model 'old-v0', the service runs "
                              "'new-v1'; re-enroll the person (POST /enroll with replace=true)",
    "unauthenticated": "Send an API key in the X-API-Key header",
    "forbidden": "This needs an admin key; yours is a client key",
    "rate_limited": "This API key may make 60 requests per minute; retry in 0.8 s",
    "not_ready": "The model is still loading; retry shortly",
    "overloaded": "The detection queue is full (12 requests); retry in a moment",
    "embedder_unavailable": "The face embedder failed (RemoteEmbedderError); retry shortly",
    "database_unavailable": "The database cannot be reached; retry shortly.",
    "storage_unwritable": "The database cannot store this change: its disk is full or read-only. "
                          "Reads still work; the operator has been told (server log).",
}
_EXTRA = {"multiple_faces": {"faces_detected": 2}, "rate_limited": {"retry_after": 1}}

INVALID_REQUEST = {
    "type": "urn:faceapi:problem:invalid_request", "title": "The request is not valid",
    "status": 422, "detail": "person_id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'",
    "code": "invalid_request", "instance": "/enroll",
    "errors": [{"loc": ["person_id"], "msg": "String should match pattern "
                "'^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'", "type": "string_pattern_mismatch"}],
}

INTAKE = (errors.EmptyImage, errors.InvalidMultipart, errors.InvalidBase64, errors.UnsupportedImageType, errors.CorruptImage,
          errors.ImageTooSmall, errors.ImageTooManyPixels, errors.UnsupportedMediaType,
          errors.PayloadTooLarge, errors.NoFace)
CLIENT = (errors.Unauthenticated, errors.RateLimited, errors.DatabaseUnavailable)
MODEL = (errors.NotReady, errors.Overloaded, errors.EmbedderUnavailable)  # routes that run the model
ADMIN = (*CLIENT, errors.Forbidden, errors.StorageUnwritable)  # admin routes write


def problem_example(error: type[errors.DomainError], instance: str) -> dict:
    retry = {"retry_after": error.retry_after} if error.retry_after is not None else {}
    return {"type": f"urn:faceapi:problem:{error.code}", "title": error.title,
            "status": STATUS[error.code], "detail": _DETAILS[error.code], "code": error.code,
            "instance": instance, **retry, **_EXTRA.get(error.code, {})}


def responses(path: str, success: tuple[int, dict] | None, *errs: type[errors.DomainError],
              invalid_request: bool = True) -> dict:
    """`responses=` for a route: `success` is (status, example body) or None (no body)."""
    by_status: dict[int, dict] = defaultdict(dict)
    for error in errs:
        by_status[STATUS[error.code]][error.code] = {"summary": error.title,
                                               "value": problem_example(error, path)}
    if invalid_request:
        by_status[422]["invalid_request"] = {
            "summary": "A field is missing or malformed (one entry per field in `errors`)",
            "value": {**INVALID_REQUEST, "instance": path}}
    out: dict[int | str, dict] = {}
    if success is not None:
        status, body = success
        out[status] = {"content": {"application/json": {"example": body}}}
    for status, examples in sorted(by_status.items()):
        out[status] = {"model": Problem, "description": " / ".join(examples),
                       "content": {"application/problem+json": {
                           "schema": {"$ref": "#/components/schemas/Problem"}, "examples": examples}}}
    return out


def _shipped_default() -> tuple[str, float, float]:
    """Model version and thresholds (FAR 1e-3, max accuracy) of the default artefact, so the
    examples show the numbers the service starts with (a JSON read, at import)."""
    fields = Settings.model_fields
    folder = ARTIFACTS_DIR / fields["model"].default
    meta = json.loads((folder / "metadata.json").read_text())
    return meta["model_version"], meta["threshold_far_1e-3"], meta["threshold"]


_MODEL, _THRESHOLD, _THRESHOLD_MAX_ACC = _shipped_default()
_FACE = {"box": [52.0, 38.5, 88.0, 112.0], "score": 0.9998, "faces_detected": 1}
_PERSON = {"person_id": "yale-01", "display_name": "Subject 01", "model_version": _MODEL,
           "created_at": "2026-11-24T06:00:00Z", "updated_at": "2026-11-24T06:00:00Z"}
_CANDIDATE = {"person_id": "yale-01", "display_name": "Subject 01", "distance": 0.21,
              "similarity": 0.79}

ENROLL = responses("/enroll", (201, {"person": _PERSON, "replaced": False, "face": _FACE}),
                   *INTAKE, errors.MultipleFaces, errors.FaceTooSmall, errors.LowQuality,
                   errors.PersonExists, *MODEL, *ADMIN)
VERIFY = responses("/verify", (200, {"person_id": "yale-01", "match": True, "distance": 0.21,
                                     "similarity": 0.79, "threshold": _THRESHOLD,
                                     "model_version": _MODEL, "face": _FACE}),
                   *INTAKE, errors.PersonNotFound, errors.ModelVersionMismatch, *MODEL, *CLIENT)
IDENTIFY = responses("/identify", (200, {"match": _CANDIDATE, "candidates": [
                         _CANDIDATE, {**_CANDIDATE, "person_id": "yale-02",
                                      "display_name": "Subject 02", "distance": 0.83,
                                      "similarity": 0.17}],
                         "threshold": _THRESHOLD, "gallery_size": 2, "target_fpir": 0.01,
                         "verify_threshold": _THRESHOLD, "threshold_source": "verify",
                         "model_version": _MODEL, "face": _FACE}),
                     *INTAKE, *MODEL, *CLIENT)
LIST_PERSONS = responses("/persons", (200, {"items": [_PERSON], "total": 1, "offset": 0,
                                            "limit": 50}), *CLIENT)
GET_PERSON = responses("/persons/yale-01", (200, _PERSON), errors.PersonNotFound, *CLIENT)
DELETE_PERSON = responses("/persons/yale-01", None, errors.PersonNotFound, *ADMIN)

LIVE = {200: {"content": {"application/json": {"example": {"status": "ok", "checks": {}}}}}}
_CHECKS = {"database": True, "model": True, "model_version": _MODEL, "threshold": _THRESHOLD}
READY = {
    200: {"content": {"application/json": {"example": {"status": "ready", "checks": _CHECKS}}}},
    503: {"description": "Not ready yet (model loading) or the database is unreachable",
          "content": {"application/json": {"example": {
              "status": "not_ready", "checks": {**_CHECKS, "model": False}}}}},
}
MODEL_INFO = {200: {"content": {"application/json": {"example": {
    "model_version": _MODEL, "embedding_dim": 512, "metric": "cosine_distance",
    "threshold": _THRESHOLD, "threshold_origin": "model artefact, policy far_1e-3",
    "threshold_criterion": "false-accept rate <= 1e-3 on validation pairs",
    "artifact": _MODEL, "provenance": {
        "source": {"split": "val", "pairs": 6000, "criterion": "max accuracy"},
        "threshold_max_accuracy": _THRESHOLD_MAX_ACC, "threshold_far_1e-3": _THRESHOLD,
        "impostor_tail": None,
        "test_metrics": {"pairs": 6000, "same_pairs": 3000, "threshold": _THRESHOLD_MAX_ACC,
                         "accuracy": 0.935167, "roc_auc": 0.98272, "tar_at_far_1e3": 0.719,
                         "far_at_threshold": 0.029667, "tar_at_threshold": 0.9},
        "command": "python -m model faces tune-threshold ...", "git_commit": "52e79f0"},
    "test_metrics_at_threshold": {"measured_on": "all pairs of the test identities", "threshold": _THRESHOLD,
                                  "far": 0.0012, "tar": 0.71},
    "identify": {"threshold": _THRESHOLD, "gallery_size": 2, "target_fpir": None,
                 "verify_threshold": _THRESHOLD, "threshold_source": "verify",
                 "impostor_pair_rate": None, "extrapolated_beyond_measured_tail": False,
                 "rule": "the artefact has no impostor tail: identify uses the 1:1 threshold, "
                         "whatever the gallery size"}}}}}}
METRICS = {200: {"content": {"text/plain": {"example": (
    "# HELP faceapi_requests_total HTTP requests\n"
    "# TYPE faceapi_requests_total counter\n"
    'faceapi_requests_total{method="POST",route="/verify",status="200"} 12.0\n')}}}}
