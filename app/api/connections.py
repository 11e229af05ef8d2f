"""The HTTP connection guard: uvicorn's httptools protocol with the three limits it lacks.

Without them one client can hold the server: a request head sent one byte at a time (or
half a head and then nothing) keeps its connection and file descriptor for ever, so about a
thousand such clients use up a 1024-descriptor process and every new client is refused; and
a header line that never ends is buffered whole (RSS grew ~1 MB per MB sent). So:

- the request head must be complete within `head_timeout_s` of its first byte (of the
  connection, for a new one): else 408 and the connection is closed;
- the head may be at most `max_head_bytes`: else 431 and closed;
- a body may not stall for more than `body_idle_timeout_s` between two reads (time the
  server itself paused reading does not count): else 408 (when no answer has begun) and closed.

uvicorn's own keep-alive timeout still closes idle connections between requests.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.problems import raw_problem

log = logging.getLogger("app.http")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    head_timeout_s: float = 20.0
    body_idle_timeout_s: float = 30.0
    max_head_bytes: int = 64 * 1024

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase = "head"  # head: waiting for a request head; body: reading its body; app: neither
        self._head_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self.head_timeout_s)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "head" and self._timer is None:
            self._arm(self.head_timeout_s)  # the first byte of the next request on a kept-alive connection
        elif self._phase == "body":
            self._arm(self.body_idle_timeout_s)
        super().data_received(data)
        if self._phase == "head" and not self.transport.is_closing():
            self._head_bytes += len(data)  # still no complete head after these bytes
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "request_header_too_large", "Request header fields too large",
                             f"The request head exceeds {self.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._phase, self._head_bytes = "body", 0
        self._arm(self.body_idle_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        answered = self.cycle is not None and self.cycle.response_complete
        self._phase = "head" if answered else "app"  # an early answer (401, 413) was already sent
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase == "app":  # a response sent before its body was read keeps the body timer
            self._phase = "head"  # the timer starts with the next request's first byte

    def handle_websocket_upgrade(self) -> None:
        self._phase = "app"  # the websocket protocol takes the connection over: no deadlines here
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == "body" and self.flow.read_paused:
            self._arm(self.body_idle_timeout_s)  # the server stopped reading, not the client
            return
        if self._phase == "head":
            self._refuse(408, "request_timeout", "Request timeout",
                         f"The request head did not arrive within {self.head_timeout_s:g} s")
        elif self._phase == "body":
            self._refuse(408, "request_timeout", "Request timeout",
                         f"The request body stalled for {self.body_idle_timeout_s:g} s")

    def _refuse(self, status: int, code: str, title: str, detail: str) -> None:
        """Answer (unless an answer has begun) and close; the app, if it is waiting for the
        body, then sees a disconnect."""
        self._disarm()
        client = "%s:%d" % self.client if self.client else "-"
        log.info("closing connection from %s: %s", client, detail)
        answered = self._phase == "body" and self.cycle is not None and self.cycle.response_started
        if not answered:
            self.transport.write(raw_problem(status, code, title, detail))
        self.transport.close()


def guarded_protocol(head_timeout_s: float, body_idle_timeout_s: float, max_head_bytes: int) -> type:
    """The protocol class with these limits, for uvicorn's `http=`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "head_timeout_s": head_timeout_s, "body_idle_timeout_s": body_idle_timeout_s,
        "max_head_bytes": max_head_bytes})


def protocol_for(settings) -> type:
    return guarded_protocol(settings.request_head_timeout_s, settings.request_body_idle_timeout_s,
                            settings.max_request_head_bytes)


def raise_open_files_limit() -> None:
    """Lift the soft descriptor limit to the hard one (often 1024 of 4096+ or 1048576): each
    client connection holds a descriptor, and the soft default runs out first."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # not on this platform, or not allowed: keep it
        pass
