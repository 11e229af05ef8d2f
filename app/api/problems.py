"""The one place where errors become HTTP: each stable code's status, and RFC 9457
problem+json bodies. Nothing else (stack traces, internals) ever reaches a response;
unexpected errors are logged with the request id and answered with a generic 500
(`internal_error`, sent by app.api.middleware.RequestContext)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount

from app.core import errors
from app.core.db import refuses_writes

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT_EXCEEDED = "body_limit_exceeded"  # request.state key set by app.api.middleware.BodyLimit
BODY_BUDGET_EXCEEDED = "body_budget_exceeded"  # the same, for its in-flight bytes budget
log = logging.getLogger("app.errors")
# a 12 MB JSON body of unknown keys listed them all: a 125 MB answer built on the event loop
# (other clients stalled for seconds); the first few say what is wrong
MAX_LISTED_ERRORS = 20

STATUS: dict[str, int] = {
    errors.InvalidRequest.code: 422,
    errors.EmptyImage.code: 400,
    errors.InvalidMultipart.code: 400,
    errors.InvalidBase64.code: 400,
    errors.UnsupportedImageType.code: 415,
    errors.CorruptImage.code: 422,
    errors.ImageTooSmall.code: 422,
    errors.ImageTooManyPixels.code: 413,
    errors.UnsupportedMediaType.code: 415,
    errors.PayloadTooLarge.code: 413,
    errors.NoFace.code: 422,
    errors.MultipleFaces.code: 422,
    errors.FaceTooSmall.code: 422,
    errors.LowQuality.code: 422,
    errors.FaceBoxNoMatch.code: 422,
    errors.PersonNotFound.code: 404,
    errors.PersonExists.code: 409,
    errors.ModelVersionMismatch.code: 409,
    errors.FaceNotFound.code: 404,
    errors.LastFace.code: 409,
    errors.Unauthenticated.code: 401,
    errors.Forbidden.code: 403,
    errors.RateLimited.code: 429,
    errors.NotReady.code: 503,
    errors.Overloaded.code: 503,
    errors.EmbedderUnavailable.code: 503,
    errors.DatabaseUnavailable.code: 503,
    errors.StorageUnwritable.code: 507,
}


def status_of(exc: errors.DomainError) -> int:
    return STATUS.get(exc.code, 400)


def problem(status: int, code: str, title: str, detail: str, instance: str,
            retry_after: int | None = None, **extra) -> JSONResponse:
    body = {"type": f"urn:faceapi:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, "instance": instance, **extra}
    headers = None
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers = {"Retry-After": str(retry_after)}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def raw_problem(status: int, code: str, title: str, detail: str) -> bytes:
    """A whole HTTP/1.1 problem+json response that closes the connection, for the connection
    guard (app.api.connections), which answers below the ASGI app."""
    body = problem(status, code, title, detail, "").body
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: {PROBLEM_JSON}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def problem_of(exc: errors.DomainError, instance: str) -> JSONResponse:
    return problem(status_of(exc), exc.code, exc.title, exc.detail, instance,
                   retry_after=exc.retry_after, **exc.extra)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain(request: Request, exc: errors.DomainError) -> JSONResponse:
        return problem_of(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        every = exc.errors()
        found = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in every[:MAX_LISTED_ERRORS]
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in found) or "invalid request"
        if len(every) > len(found):
            detail += f"; and {len(every) - len(found)} more"
        return problem_of(errors.InvalidRequest(detail, errors=found), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        response = problem(exc.status_code, code, phrase, detail, request.url.path)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            response.headers["Allow"] = ", ".join(allowed)  # Starlette names only the first route's
        return response

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(request: Request, exc: ClientDisconnect) -> JSONResponse:
        limit = getattr(request.state, BODY_LIMIT_EXCEEDED, None)
        if limit is not None:  # BodyLimit cut the body off while it streamed in
            return problem_of(errors.PayloadTooLarge(f"The body exceeds {limit} bytes"), request.url.path)
        busy = getattr(request.state, BODY_BUDGET_EXCEEDED, None)
        if busy is not None:
            return problem_of(busy, request.url.path)
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return problem(400, "client_disconnected", "Client disconnected",
                       "The client went away before the body was read", request.url.path)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(InternalError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeout)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if reason := refuses_writes(exc):
            log.warning("the database refuses writes on %s %s: %s (full or read-only disk?)",
                        request.method, request.url.path, reason)
            return problem_of(errors.StorageUnwritable(
                "The database cannot store this change: its disk is full or read-only. Reads "
                "still work; the operator has been told (server log)."), request.url.path)
        if isinstance(exc, InternalError):  # not a fault of the database's reach: a real error
            raise exc
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    type(exc).__name__)
        return problem_of(errors.DatabaseUnavailable("The database cannot be reached; retry shortly."),
                          request.url.path)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (GET implies HEAD: app.api.middleware.HeadAsGet)."""
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]  # mounts take any
    methods = {m for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
               if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)}
    return sorted(methods | ({"HEAD"} if "GET" in methods else set()))


def internal_error(instance: str) -> JSONResponse:
    """The answer to an unexpected error (app.api.middleware logs its trace with the request id)."""
    return problem(500, "internal_error", "Internal server error",
                   "An unexpected error occurred; it has been logged.", instance)
