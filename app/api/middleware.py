"""Pure ASGI middleware. `RequestContext` is the outermost layer, so every response, even a
413 that `BodyLimit` sends before the app sees the request, carries X-Request-ID, is counted
in the metrics and logged once."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

from app.api.problems import BODY_BUDGET_EXCEEDED, BODY_LIMIT_EXCEEDED, internal_error, problem_of
from app.domain import errors
from app.core.telemetry import Metrics, request_id_var

access = logging.getLogger("app.access")
log = logging.getLogger("app.errors")


def _request_id(headers: dict) -> str:
    rid = headers.get(b"x-request-id", b"").decode("latin-1")
    ok = rid.isascii() and rid.replace("-", "").isalnum() and len(rid) <= 64
    return rid if ok else uuid.uuid4().hex


class RequestContext:
    def __init__(self, app, metrics_of) -> None:
        self.app = app
        self.metrics_of = metrics_of  # () -> Metrics | None: the runtime exists only after start-up

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = _request_id(dict(scope.get("headers") or []))
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = [0]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # the trace goes to the log (no image data is ever in an exception message), never
            # to the client
            log.exception("unhandled error on %s %s", scope["method"], scope.get("path", ""))
            if status[0]:  # the answer had begun: nothing sane can follow
                raise
            await internal_error(scope.get("path", ""))(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics: Metrics | None = self.metrics_of()
            if metrics is not None:
                metrics.requests.labels(scope["method"], path, str(status[0])).inc()
                metrics.latency.labels(scope["method"], path).observe(elapsed)
            access.info("%s %s %s", scope["method"], path, status[0],
                        extra={"method": scope["method"], "route": path, "status": status[0],
                               "ms": round(elapsed * 1e3, 1)})
            request_id_var.reset(token)


class BodyLimit:
    """Refuse a body over the limit as it streams in (413), without reading it all; refuse
    any body (503 `overloaded`) while the bodies of requests in progress already hold
    `max_inflight_bytes` (a body stays in memory until its request ends: 200 clients that
    each start a 13 MB upload would otherwise hold 2.6 GB before detection sheds any); and
    refuse a body (429 `rate_limited`) that would take one client past its share,
    `max_inflight_bytes_per_client`: else 41 connections of one key, each declaring 13 MB and
    sending a byte every 10 s, reserved the whole budget and every other client got 503.

    A client is its X-API-Key (by digest; the key is checked later, and a wrong one is
    answered 401 at once, which ends its reservation), or its address when it sends none."""

    def __init__(self, app, max_bytes: int, max_inflight_bytes: int | None = None,
                 max_inflight_bytes_per_client: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_inflight = max_inflight_bytes
        self.max_per_client = max_inflight_bytes_per_client
        self.inflight = 0  # body bytes received by requests still in progress (one event loop)
        self.by_client: dict[str, int] = {}  # the same, per client (only those holding some)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            exc = errors.PayloadTooLarge(f"The body is {int(declared)} bytes; the limit is {self.max_bytes} bytes")
            return await problem_of(exc, scope.get("path", ""))(scope, receive, send)
        # a declared body is reserved whole before any of it is read (clients arriving together
        # would otherwise all pass the check before any bytes were counted); a chunked one is
        # counted as it streams
        reserved = int(declared) if declared is not None and declared.isdigit() else 0
        client = _client_of(scope)
        if reserved and (refusal := self._refusal(client, reserved)):
            return await problem_of(refusal, scope.get("path", ""))(scope, receive, send)
        self._hold(client, reserved)
        seen, exceeded, held = 0, False, reserved

        async def limited_receive():
            # Raising here would escape as a 500. Instead the app is told the client went away
            # (it stops reading), and the flag turns the resulting ClientDisconnect into a 413
            # (app.api.problems).
            nonlocal seen, exceeded, held
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                n = len(message.get("body", b""))
                seen += n
                if seen > self.max_bytes:
                    exceeded = True
                    scope.setdefault("state", {})[BODY_LIMIT_EXCEEDED] = self.max_bytes
                    return {"type": "http.disconnect"}
                grow = max(0, seen - held)  # beyond what was reserved
                if grow and (refusal := self._refusal(client, grow)):
                    exceeded = True
                    scope.setdefault("state", {})[BODY_BUDGET_EXCEEDED] = refusal
                    return {"type": "http.disconnect"}
                self._hold(client, grow)
                held += grow
            return message

        try:
            return await self.app(scope, limited_receive, send)
        finally:
            self._hold(client, -held)

    def _hold(self, client: str, n: int) -> None:
        if not n:
            return
        self.inflight += n
        left = self.by_client.get(client, 0) + n
        if left > 0:
            self.by_client[client] = left
        else:
            self.by_client.pop(client, None)

    def _refusal(self, client: str, n: int) -> errors.DomainError | None:
        mine = self.by_client.get(client, 0)
        if self.max_per_client is not None and mine + n > self.max_per_client:
            return errors.RateLimited(f"This client's request bodies in progress hold {mine} bytes "
                                      f"and this one adds {n}; one client may hold "
                                      f"{self.max_per_client} bytes at once", retry_after=1)
        if self._over_budget(n):
            return self._busy()
        return None

    def _over_budget(self, n: int) -> bool:
        return self.max_inflight is not None and self.inflight + n > self.max_inflight

    def _busy(self) -> errors.DomainError:
        return errors.Overloaded(f"The request bodies in progress hold {self.inflight} bytes "
                                 f"(the limit is {self.max_inflight}); retry in a moment")


def _client_of(scope) -> str:
    key = dict(scope.get("headers") or []).get(b"x-api-key")
    if key:
        return "key:" + hashlib.sha256(key).hexdigest()
    client = scope.get("client")
    return "ip:" + (client[0] if client else "-")


class HeadAsGet:
    """HEAD is GET without the body (RFC 9110 9.3.2), for every GET route: monitors and caches
    probe with HEAD, and the routes are declared for GET only."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def send_head(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}  # the headers (Content-Length too) stay GET's
            await send(message)

        inner = {**scope, "method": "GET"}  # a copy: uvicorn must still see HEAD
        try:
            await self.app(inner, receive, send_head)
        finally:
            _keep_route(scope, inner)


class TrailingSlash:
    """`/enroll/` is `/enroll`. Starlette's answer was an empty 307 to an absolute URL built
    from the client's Host header: `curl -X POST .../enroll/` printed nothing, and a forged
    Host sent the client elsewhere."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or len(path) < 2 or not path.endswith("/"):
            return await self.app(scope, receive, send)
        inner = {**scope, "path": path.rstrip("/") or "/"}
        if scope.get("raw_path"):
            inner["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        try:
            await self.app(inner, receive, send)
        finally:
            _keep_route(scope, inner)


def _keep_route(outer: dict, inner: dict) -> None:
    """The matched route, for RequestContext's metrics and access log (it reads the outer scope)."""
    if "route" in inner:
        outer["route"] = inner["route"]
