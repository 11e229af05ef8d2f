"""Domain errors: what went wrong, as a stable machine-readable ``code``.

Each error class is the one owner of its facts: ``code``, ``title``, the HTTP ``status`` it
is answered with, ``retry_after`` for errors that pass with time and ``when`` (one line for
the error table of docs/api.md). Vision, storage and the use cases raise these;
app/api/problems.py turns them into RFC 9457 problem+json bodies, app/api/examples.py into
OpenAPI examples, and the docs' table is generated from them (``python -m app.api.problems
--markdown``). A subclass without a status, code, title or ``when`` is refused at import.
"""

from __future__ import annotations

from typing import ClassVar

_REQUIRED = ("code", "title", "status", "when")


class DomainError(Exception):
    code: ClassVar[str]
    title: ClassVar[str]
    status: ClassVar[int]  # the HTTP status it is answered with
    when: ClassVar[str]  # when it is answered, for the docs' error table
    retry_after: ClassVar[int | None] = None  # seconds; for errors that pass with time
    # answered by the HTTP layer for any route (routing, the connection, a bug), so the
    # OpenAPI examples of each route do not list it
    any_route: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        missing = [a for a in _REQUIRED if not hasattr(cls, a)]
        if missing:
            raise TypeError(f"error class {cls.__name__} has no {', '.join(missing)}")
        if not (isinstance(cls.status, int) and 400 <= cls.status <= 599):
            raise TypeError(f"error class {cls.__name__}: status {cls.status!r} is not 4xx or 5xx")

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None,
                 **extra: object) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if retry_after is not None:
            self.retry_after = retry_after
        self.extra = extra  # more machine-readable fields for the problem body


def _error(name: str, code: str, status: int, title: str, when: str,
           retry_after: int | None = None, any_route: bool = False) -> type[DomainError]:
    return type(name, (DomainError,), {"code": code, "status": status, "title": title,
                                       "when": when, "retry_after": retry_after,
                                       "any_route": any_route, "__module__": __name__})


def all_errors() -> list[type[DomainError]]:
    """Every error class of this module, in the order they are defined."""
    return [v for v in globals().values()
            if isinstance(v, type) and issubclass(v, DomainError) and v is not DomainError]


# request and image intake
InvalidRequest = _error("InvalidRequest", "invalid_request", 422, "The request is not valid",
                        "a field is missing or out of range (`errors` lists which)")
EmptyImage = _error("EmptyImage", "image_missing", 400, "No image was sent",
                    "no `image` file field (multipart)")
InvalidMultipart = _error(
    "InvalidMultipart", "invalid_multipart", 400, "The multipart body cannot be read",
    "the multipart body cannot be parsed: no or another boundary, malformed or unterminated "
    "parts, more than one file or ten fields, a text field over 1 MiB")
InvalidBase64 = _error("InvalidBase64", "invalid_base64", 400, "image_base64 is not valid base64",
                       "`image_base64` is not base64")
UnsupportedMediaType = _error("UnsupportedMediaType", "unsupported_media_type", 415,
                              "The request body type is not supported",
                              "body neither multipart/form-data nor application/json")
UnsupportedImageType = _error(
    "UnsupportedImageType", "unsupported_image_type", 415,
    "Not a JPEG, PNG, WebP, BMP or GIF image",
    "not a JPEG, PNG, WebP, BMP or GIF image, read from the bytes (HEIC, AVIF, TIFF, SVG are "
    "refused)")
CorruptImage = _error("CorruptImage", "image_corrupt", 422, "The image could not be decoded",
                      "the image does not decode")
ImageTooSmall = _error("ImageTooSmall", "image_too_small", 422, "The image is too small",
                       "a side under `FACEAPI_MIN_IMAGE_SIDE`")
ImageTooManyPixels = _error("ImageTooManyPixels", "image_too_many_pixels", 413,
                            "The image has too many pixels",
                            "over `FACEAPI_MAX_PIXELS`, read from the header before decoding")
PayloadTooLarge = _error("PayloadTooLarge", "payload_too_large", 413, "The request body is too large",
                         "body over the upload limit (refused while it streams in)")
# faces
NoFace = _error("NoFace", "no_face", 422, "No face was found in the image", "no face found")
MultipleFaces = _error(
    "MultipleFaces", "multiple_faces", 422, "More than one face in the image",
    "enroll: the two likeliest subjects are alike in size (within `FACEAPI_ENROLL_DOMINANCE_RATIO`), "
    "closeness to the centre, edge cut and detector confidence; `candidates` lists the faces")
FaceBoxNoMatch = _error("FaceBoxNoMatch", "face_box_no_match", 422,
                        "No detected face overlaps face_box enough",
                        "`face_box` was sent and no detected face overlaps it enough")
FaceTooSmall = _error("FaceTooSmall", "face_too_small", 422, "The face is too small to enroll",
                      "enroll: the face is under `FACEAPI_MIN_FACE_SIZE`")
LowQuality = _error("LowQuality", "low_quality", 422, "The face is not clear enough",
                    "enroll: detection confidence under `FACEAPI_ENROLL_MIN_SCORE`")
# persons
PersonNotFound = _error("PersonNotFound", "person_not_found", 404, "No such person is enrolled",
                        "no such `person_id`")
PersonExists = _error("PersonExists", "person_exists", 409, "This person is already enrolled",
                      "enroll of an enrolled person without `replace=true`")
FaceNotFound = _error("FaceNotFound", "face_not_found", 404, "The person has no such face",
                      "the person has no face with this id")
LastFace = _error("LastFace", "last_face", 409, "A person's only face cannot be removed",
                  "removing the only face of a person (delete the person instead)")
ModelVersionMismatch = _error("ModelVersionMismatch", "model_version_mismatch", 409,
                              "The stored embedding was made by another model version",
                              "verify against a person enrolled with another model: re-enroll")
# auth and limits
Unauthenticated = _error("Unauthenticated", "unauthenticated", 401, "Missing or invalid API key",
                         "no key, or a wrong or revoked key")
Forbidden = _error("Forbidden", "forbidden", 403, "This API key may not do that",
                   "a client key on an admin route")
RateLimited = _error(
    "RateLimited", "rate_limited", 429, "Too many requests",
    "over `FACEAPI_RATE_LIMIT_PER_MINUTE` for the key, a key's bodies in progress over "
    "`FACEAPI_MAX_INFLIGHT_BODY_BYTES_PER_CLIENT`, or a key known to be wrong past "
    "`FACEAPI_AUTH_FAILURES_PER_MINUTE` from one address", retry_after=1)
# availability: these pass with time, so they carry Retry-After
NotReady = _error("NotReady", "not_ready", 503, "The service is not ready",
                  "the model is still loading (or failed to start); keys and `/persons` work "
                  "meanwhile", retry_after=5)
Overloaded = _error("Overloaded", "overloaded", 503, "The service is at capacity",
                    "the detection or embedding queue is full, the photos in detection hold "
                    "`FACEAPI_DETECT_MAX_INFLIGHT_PIXELS`, or the bodies in progress hold "
                    "`FACEAPI_MAX_INFLIGHT_BODY_BYTES`; answered at once", retry_after=1)
EmbedderUnavailable = _error("EmbedderUnavailable", "embedder_unavailable", 503,
                             "The face embedder is unavailable",
                             "the model (or TF Serving, after retries) failed on this batch",
                             retry_after=5)
DatabaseUnavailable = _error("DatabaseUnavailable", "database_unavailable", 503,
                             "The database is unavailable",
                             "the database cannot be reached, or did not answer within "
                             "`FACEAPI_DATABASE_TIMEOUT_S`",
                             retry_after=2)
# a full or read-only disk lasts until the operator acts: no Retry-After
StorageUnwritable = _error("StorageUnwritable", "storage_unwritable", 507,
                           "The database refuses writes",
                           "a write on a full or read-only database disk; reads still work")
# the HTTP layer, for any route: routing, the connection guard (app.api.connections), a bug
RouteNotFound = _error("RouteNotFound", "not_found", 404, "Not Found",
                       "no such route (`person_not_found` is an unknown person)", any_route=True)
MethodNotAllowed = _error("MethodNotAllowed", "method_not_allowed", 405, "Method Not Allowed",
                          "the route takes other methods, named in the `Allow` header",
                          any_route=True)
RequestTimeout = _error(
    "RequestTimeout", "request_timeout", 408, "Request timeout",
    "the request head did not arrive within `FACEAPI_REQUEST_HEAD_TIMEOUT_S`, or the body stalled "
    "for `FACEAPI_REQUEST_BODY_IDLE_TIMEOUT_S`, fell under `FACEAPI_REQUEST_BODY_MIN_RATE` or "
    "outlasted `FACEAPI_REQUEST_BODY_TIMEOUT_S`; the connection is closed", any_route=True)
RequestHeaderTooLarge = _error(
    "RequestHeaderTooLarge", "request_header_too_large", 431, "Request header fields too large",
    "request line and headers over `FACEAPI_MAX_REQUEST_HEAD_BYTES`; the connection is closed",
    any_route=True)
ClientDisconnected = _error("ClientDisconnected", "client_disconnected", 400, "Client disconnected",
                            "the client went away before the body was read (nobody reads the "
                            "answer; it is logged)", any_route=True)
InternalServerError = _error(
    "InternalServerError", "internal_error", 500, "Internal server error",
    "a bug: nothing else should ever give it; the trace is in the log under the request id",
    any_route=True)
