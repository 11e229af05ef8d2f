"""OpenAPI `responses` for each route: an example for the success answer and for every
problem+json the route can send, grouped by status. Titles and codes come from the error
classes (app.domain.errors), so the docs cannot drift from what the handlers send; a test
checks every example against its schema."""

from __future__ import annotations

from collections import defaultdict

from app.domain import errors
from app.core.config import ARTIFACTS_DIR, Settings
from app.api.schemas import Problem
from app.inference.metadata import ArtifactMetadata

_DEFAULT = {name: f.default for name, f in Settings.model_fields.items()}
_DETAILS = {
    "image_missing": "Send the photo as the multipart file field `image`",
    "invalid_multipart": "The multipart body cannot be read: Invalid multipart data.",
    "invalid_base64": "image_base64 is not valid base64 (a data: URL prefix and line breaks are fine)",
    "unsupported_image_type": "The bytes are not a JPEG, PNG, WebP, BMP or GIF image",
    "image_corrupt": "The image could not be decoded: it is truncated or damaged",
    "image_too_small": "The image is 20x24 px; the smallest accepted side is "
                       f"{_DEFAULT['min_image_side']} px",
    "image_too_many_pixels": f"The image has 64000000 pixels; the limit is {_DEFAULT['max_pixels']}",
    "unsupported_media_type": "Send multipart/form-data (fields person_id, image) or "
                              "application/json (image_base64)",
    "payload_too_large": "The body is 20000000 bytes; the limit is 14045525 bytes",
    "no_face": "No face was found in the image; send a photo with one frontal face",
    "multiple_faces": "2 faces were found and the two likeliest subjects (88 and 86 px: size ratio "
                      f"1.02, below {_DEFAULT['enroll_dominance_ratio']}) are alike in size, "
                      "closeness to the centre, edge cut and detection confidence; send face_box "
                      "with the box of the face to enroll (see `candidates`), or a photo of one "
                      "person",
    "face_box_no_match": "No detected face overlaps face_box [400.0, 20.0, 60.0, 60.0] enough (best "
                         "overlap 0.00, needed 0.3); choose one of the 2 faces listed in `candidates`",
    "face_too_small": f"The face is 14 px; enrolling needs at least {_DEFAULT['min_face_size']} px",
    "low_quality": f"Face detection confidence 0.61 is below {_DEFAULT['enroll_min_score']}; "
                   "send a sharper, frontal, well-lit photo",
    "person_not_found": "No person 'yale-01' is enrolled",
    "person_exists": "Person 'yale-01' is already enrolled; send replace=true to re-enroll",
    "face_not_found": "Person 'yale-01' has no face 99",
    "last_face": "Face 7 is the only face of 'yale-01'; a person needs at least one "
                 "(DELETE /persons/yale-01 removes the person)",
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
_CANDIDATES = [
    {"box": [52.0, 38.5, 88.0, 112.0], "size": 88.0, "score": 0.9213,
     "landmarks": [[74.1, 82.0], [114.3, 81.2], [95.0, 104.6], [78.2, 124.9], [110.8, 124.3]]},
    {"box": [230.0, 41.0, 86.0, 109.0], "size": 86.0, "score": 0.9177,
     "landmarks": [[251.3, 84.2], [290.8, 83.5], [271.9, 106.1], [255.0, 125.8], [287.1, 125.0]]},
]
_EXTRA = {"multiple_faces": {"faces_detected": 2, "comparable_faces": 2, "face_sizes": [88.0, 86.0],
                             "size_ratio": 1.023,
                             "required_ratio": _DEFAULT["enroll_dominance_ratio"],
                             "candidates": [{**_CANDIDATES[0], "subject_score": 1.34},
                                            {**_CANDIDATES[1], "subject_score": 1.31}]},
          "face_box_no_match": {"face_box": [400.0, 20.0, 60.0, 60.0], "best_overlap": 0.0,
                                "min_overlap": 0.3, "candidates": _CANDIDATES},
          "rate_limited": {"retry_after": 1}}

INVALID_REQUEST = {
    "type": "urn:faceapi:problem:invalid_request", "title": errors.InvalidRequest.title,
    "status": errors.InvalidRequest.status, "detail": "person_id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'",
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
            "status": error.status, "detail": _DETAILS[error.code], "code": error.code,
            "instance": instance, **retry, **_EXTRA.get(error.code, {})}


def responses(path: str, success: tuple[int, dict] | None, *errs: type[errors.DomainError],
              invalid_request: bool = True) -> dict:
    """`responses=` for a route: `success` is (status, example body) or None (no body)."""
    by_status: dict[int, dict] = defaultdict(dict)
    for error in errs:
        by_status[error.status][error.code] = {"summary": error.title,
                                               "value": problem_example(error, path)}
    if invalid_request:
        by_status[errors.InvalidRequest.status][errors.InvalidRequest.code] = {
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


def _shipped_default() -> tuple[str, float, float, dict[int, float]]:
    """Model version and thresholds (FAR 1e-3, max accuracy, FAR 1e-3 by template size) of the
    default artefact, so the examples show the numbers the service starts with (a JSON read,
    at import)."""
    fields = Settings.model_fields
    folder = ARTIFACTS_DIR / fields["model"].default
    meta = ArtifactMetadata.read(folder)
    t = meta.threshold_far_1e3
    cal = meta.template_calibration
    by_size = ({k: cal.calibration().threshold(t, k) for k in (1, 2, 3)} if cal
               else {k: t for k in (1, 2, 3)})
    return meta.model_version, t, meta.threshold, by_size


_MODEL, _THRESHOLD, _THRESHOLD_MAX_ACC, _BY_SIZE = _shipped_default()
_FACE = {"box": [52.0, 38.5, 88.0, 112.0], "score": 0.9998, "faces_detected": 1}
_PERSON = {"person_id": "yale-01", "display_name": "Subject 01", "model_version": _MODEL,
           "created_at": "2026-11-24T06:00:00Z", "updated_at": "2026-11-24T06:00:00Z",
           "template_size": 1}
_CANDIDATE = {"person_id": "yale-01", "display_name": "Subject 01", "distance": 0.17,
              "similarity": 0.83, "template_size": 3, "threshold": _BY_SIZE[3]}

ENROLL = responses("/enroll", (201, {"person": _PERSON, "replaced": False, "face": _FACE}),
                   *INTAKE, errors.MultipleFaces, errors.FaceBoxNoMatch, errors.FaceTooSmall,
                   errors.LowQuality, errors.PersonExists, *MODEL, *ADMIN)
VERIFY = responses("/verify", (200, {"person_id": "yale-01", "match": True, "distance": 0.21,
                                     "similarity": 0.79, "threshold": _THRESHOLD,
                                     "model_version": _MODEL, "face": _FACE, "template_size": 1}),
                   *INTAKE, errors.FaceBoxNoMatch, errors.PersonNotFound, errors.ModelVersionMismatch,
                   *MODEL, *CLIENT)
IDENTIFY = responses("/identify", (200, {"match": _CANDIDATE, "candidates": [
                         _CANDIDATE, {**_CANDIDATE, "person_id": "yale-02",
                                      "display_name": "Subject 02", "distance": 0.83,
                                      "similarity": 0.17, "template_size": 1,
                                      "threshold": _THRESHOLD}],
                         "threshold": _THRESHOLD, "gallery_size": 2, "target_fpir": 0.01,
                         "verify_threshold": _THRESHOLD, "threshold_source": "verify",
                         "model_version": _MODEL, "face": _FACE}),
                     *INTAKE, errors.FaceBoxNoMatch, *MODEL, *CLIENT)
IDENTIFY_ALL = {"faces": [
    {"box": [52.0, 38.5, 88.0, 112.0], "score": 0.9213, "subject": True, "match": _CANDIDATE,
     "candidates": [_CANDIDATE]},
    {"box": [230.0, 41.0, 86.0, 109.0], "score": 0.9177, "subject": False, "match": None,
     "candidates": [{**_CANDIDATE, "person_id": "yale-02", "display_name": "Subject 02",
                     "distance": 0.83, "similarity": 0.17}]}],
    "faces_detected": 2, "max_faces": 20, "threshold": _THRESHOLD, "gallery_size": 2,
    "target_fpir": 0.01, "verify_threshold": _THRESHOLD, "threshold_source": "verify",
    "model_version": _MODEL}
# /identify answers one of two shapes: both shown
_one = IDENTIFY[200]["content"]["application/json"].pop("example")
IDENTIFY[200]["content"]["application/json"]["examples"] = {
    "one_face": {"summary": "The person the photo is of", "value": _one},
    "all_faces": {"summary": "all_faces=true: every face", "value": IDENTIFY_ALL}}
COMPARE = responses("/compare", (200, {"match": True, "distance": 0.18, "similarity": 0.82,
                                       "threshold": _THRESHOLD, "model_version": _MODEL,
                                       "face_a": _FACE, "face_b": {**_FACE, "box": [30.0, 22.0, 96.0, 121.0]}}),
                    *INTAKE, *MODEL, *CLIENT)
DETECT = responses("/detect", (200, {"faces": [{**_CANDIDATES[0], "subject": True},
                                               {**_CANDIDATES[1], "subject": False}],
                                     "subject": 0, "ambiguous": True, "faces_detected": 2,
                                     "image_size": [320, 240]}),
                   *INTAKE, *MODEL, *CLIENT)
LIST_PERSONS = responses("/persons", (200, {"items": [_PERSON], "total": 1, "offset": 0,
                                            "limit": 50}), *CLIENT)
_FACES = [{"id": 7, "added_at": "2026-11-24T06:00:00Z", "box": [52.0, 38.5, 88.0, 112.0], "score": 0.9998},
          {"id": 9, "added_at": "2026-11-25T09:30:00Z", "box": [40.0, 31.0, 95.5, 120.0], "score": 0.9991},
          {"id": 12, "added_at": "2026-11-26T14:10:00Z", "box": [61.0, 44.0, 80.0, 101.5], "score": 0.9987}]
GET_PERSON = responses("/persons/yale-01", (200, {**_PERSON, "template_size": 3, "faces": _FACES}),
                       errors.PersonNotFound, *CLIENT)
ADD_FACE = responses("/persons/yale-01/faces", (201, {"person_id": "yale-01", "template_size": 3, "face": {
                         **_FACE, "id": 12, "added_at": "2026-11-26T14:10:00Z"}}),
                     *INTAKE, errors.MultipleFaces, errors.FaceBoxNoMatch, errors.FaceTooSmall,
                     errors.LowQuality, errors.PersonNotFound, errors.ModelVersionMismatch, *MODEL, *ADMIN)
DELETE_FACE = responses("/persons/yale-01/faces/7", None, errors.PersonNotFound, errors.FaceNotFound,
                        errors.LastFace, *ADMIN)
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
    "model_version": _MODEL, "embedding_dim": 256, "metric": "cosine_distance",
    "threshold": _THRESHOLD, "threshold_origin": "model artefact, policy far_1e-3",
    "threshold_criterion": "false-accept rate <= 1e-3 on validation pairs",
    "threshold_by_template_size": {str(k): t for k, t in _BY_SIZE.items()},
    "artifact": _MODEL,
    "runtime": {"name": "litert", "reason": "CPU host (no GPU visible to TensorFlow): LiteRT, TensorFlow not imported"},
    "provenance": {
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
