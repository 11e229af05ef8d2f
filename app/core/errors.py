"""Domain errors carry their HTTP meaning; one handler turns them into RFC 9457 problem+json.

Every error a client can cause has a stable machine-readable ``code``. Nothing
else (stack traces, internals) ever reaches a response.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT_EXCEEDED = "body_limit_exceeded"  # request.state key set by app.main.BodyLimit
log = logging.getLogger("app.errors")


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


def _error(name: str, status: int, code: str, title: str) -> type[DomainError]:
    return type(name, (DomainError,), {"status": status, "code": code, "title": title})


# image intake
EmptyImage = _error("EmptyImage", 400, "image_missing", "No image was sent")
InvalidBase64 = _error("InvalidBase64", 400, "invalid_base64", "image_base64 is not valid base64")
UnsupportedImageType = _error(
    "UnsupportedImageType", 415, "unsupported_image_type", "Not a JPEG, PNG, WebP or BMP image"
)
CorruptImage = _error("CorruptImage", 422, "image_corrupt", "The image could not be decoded")
ImageTooSmall = _error("ImageTooSmall", 422, "image_too_small", "The image is too small")
ImageTooManyPixels = _error(
    "ImageTooManyPixels", 413, "image_too_many_pixels", "The image has too many pixels"
)
UnsupportedMediaType = _error(
    "UnsupportedMediaType", 415, "unsupported_media_type", "The request body type is not supported"
)
PayloadTooLarge = _error("PayloadTooLarge", 413, "payload_too_large", "The request body is too large")
# faces
NoFace = _error("NoFace", 422, "no_face", "No face was found in the image")
MultipleFaces = _error("MultipleFaces", 422, "multiple_faces", "More than one face in the image")
FaceTooSmall = _error("FaceTooSmall", 422, "face_too_small", "The face is too small to enroll")
LowQuality = _error("LowQuality", 422, "low_quality", "The face is not clear enough")
# persons
PersonNotFound = _error("PersonNotFound", 404, "person_not_found", "No such person is enrolled")
PersonExists = _error("PersonExists", 409, "person_exists", "This person is already enrolled")
ModelVersionMismatch = _error(
    "ModelVersionMismatch", 409, "model_version_mismatch",
    "The stored embedding was made by another model version",
)
# auth and limits
Unauthenticated = _error("Unauthenticated", 401, "unauthenticated", "Missing or invalid API key")
Forbidden = _error("Forbidden", 403, "forbidden", "This API key may not do that")
RateLimited = _error("RateLimited", 429, "rate_limited", "Too many requests for this API key")
# availability
NotReady = _error("NotReady", 503, "not_ready", "The service is not ready")
DatabaseUnavailable = _error(
    "DatabaseUnavailable", 503, "database_unavailable", "The database is unavailable"
)


def problem(status: int, code: str, title: str, detail: str, instance: str, **extra) -> JSONResponse:
    body = {"type": f"urn:faceapi:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, "instance": instance, **extra}
    headers = {"Retry-After": str(extra.get("retry_after", 1))} if status in (429, 503) else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return problem(422, "invalid_request", "The request is not valid", detail,
                       request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        return problem(exc.status_code, code, phrase, detail, request.url.path)

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(request: Request, exc: ClientDisconnect) -> JSONResponse:
        limit = getattr(request.state, BODY_LIMIT_EXCEEDED, None)
        if limit is not None:  # BodyLimit cut the body off while it streamed in
            return problem(413, PayloadTooLarge.code, PayloadTooLarge.title,
                           f"The body exceeds {limit} bytes", request.url.path)
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return problem(400, "client_disconnected", "Client disconnected",
                       "The client went away before the body was read", request.url.path)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeout)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    type(exc).__name__)
        return problem(503, "database_unavailable", "The database is unavailable",
                       "The database cannot be reached; retry shortly.", request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the trace goes to the log (no image data is ever in an exception message), never to the client
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "Internal server error",
                       "An unexpected error occurred; it has been logged.", request.url.path)
