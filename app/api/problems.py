"""The one place where errors become HTTP: RFC 9457 problem+json bodies, each with the
status its error class carries (app.domain.errors). Nothing else (stack traces, internals) ever
reaches a response; unexpected errors are logged with the request id and answered with a generic 500
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

from app.domain import errors
from app.core.db import refuses_writes

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT_EXCEEDED = "body_limit_exceeded"  # request.state key set by app.api.middleware.BodyLimit
BODY_BUDGET_EXCEEDED = "body_budget_exceeded"  # the same, for its in-flight bytes budget
log = logging.getLogger("app.errors")
# a 12 MB JSON body of unknown keys listed them all: a 125 MB answer built on the event loop
# (other clients stalled for seconds); the first few say what is wrong
MAX_LISTED_ERRORS = 20

# code -> HTTP status, read from the error classes (app.domain.errors owns each status)
STATUS: dict[str, int] = {cls.code: cls.status for cls in errors.all_errors()}
# the HTTP layer's own answers (Starlette's 404 and 405) by status
_HTTP_ERRORS: dict[int, type[errors.DomainError]] = {
    cls.status: cls for cls in (errors.RouteNotFound, errors.MethodNotAllowed)}


def status_of(exc: errors.DomainError) -> int:
    return exc.status


def problem(status: int, code: str, title: str, detail: str, instance: str,
            retry_after: int | None = None, **extra) -> JSONResponse:
    body = {"type": f"urn:faceapi:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, "instance": instance, **extra}
    headers = None
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers = {"Retry-After": str(retry_after)}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def raw_problem(error: type[errors.DomainError], detail: str) -> bytes:
    """A whole HTTP/1.1 problem+json response that closes the connection, for the connection
    guard (app.api.connections), which answers below the ASGI app."""
    status = error.status
    body = problem(status, error.code, error.title, detail, "").body
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
        known = _HTTP_ERRORS.get(exc.status_code)
        code = known.code if known else phrase.lower().replace(" ", "_").replace("-", "_")
        title = known.title if known else phrase
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        response = problem(exc.status_code, code, title, detail, request.url.path)
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
        gone = errors.ClientDisconnected("The client went away before the body was read")
        return problem_of(gone, request.url.path)

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
    bug = errors.InternalServerError("An unexpected error occurred; it has been logged.")
    return problem_of(bug, instance)


def error_table() -> str:
    """The error table of docs/api.md, from the error classes: one row per code."""
    rows = ["| code | HTTP | when |", "|---|---|---|"]
    for cls in errors.all_errors():
        when = cls.when
        if cls.retry_after is not None:
            when += "; the answer carries `Retry-After`"
        rows.append(f"| `{cls.code}` | {cls.status} | {when} |")
    return "\n".join(rows) + "\n"


TABLE_START, TABLE_END = "<!-- errors:start", "<!-- errors:end -->"


def with_error_table(doc: str) -> str:
    """`doc` (the text of docs/api.md) with the table between its markers regenerated."""
    head, rest = doc.split(TABLE_START, 1)
    marker, _ = rest.split("\n", 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}{marker}\n\n{error_table()}\n{TABLE_END}{tail}"


if __name__ == "__main__":  # python -m app.api.problems --markdown [--write docs/api.md]
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(
        description="The error table of docs/api.md, from app.domain.errors")
    parser.add_argument("--markdown", action="store_true", help="print the table")
    parser.add_argument("--write", type=Path, metavar="DOC", help="regenerate the table in DOC")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(with_error_table(args.write.read_text()))
    if args.markdown or not args.write:
        print(error_table(), end="")
