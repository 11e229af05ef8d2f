"""The HTTP connection guard: uvicorn's httptools protocol with the limits it lacks.

Without them one client can hold the server: a request head sent one byte at a time (or
half a head and then nothing) keeps its connection and file descriptor for ever, so about a
thousand such clients use up a 1024-descriptor process and every new client is refused; a
header line that never ends is buffered whole (RSS grew ~1 MB per MB sent); and a body
that trickles in (a byte every 10 s) holds its share of the in-flight body budget for as
long as the client likes. So:

- the request head must be complete within `head_timeout_s` of its first byte (of the
  connection, for a new one): else 408 and the connection is closed;
- the head may be at most `max_head_bytes`, however it arrives (in one write or many):
  else 431 and closed;
- a body may not stall for more than `body_idle_timeout_s` between two reads, must arrive
  at `body_min_rate` bytes/s or more on average once it has taken `body_idle_timeout_s`,
  and must be complete within `body_timeout_s`: else 408 (when no answer has begun) and
  closed. Time the server itself paused reading does not count against the client;
- an answer sent before the body was read (401, 403, 413) on a connection that is to close
  is followed by a lingering close: the server half-closes (FIN after the answer) and reads
  and discards the rest of the body (at most `max_linger_bytes`, under the same body
  limits) before it closes. Closing at once, with body bytes unread, makes the kernel send
  a reset, and a client that sends its whole body before it reads (Python's urllib, any
  client without `Expect: 100-continue`) lost the answer to "connection reset".

uvicorn's own keep-alive timeout still closes idle connections between requests.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.problems import raw_problem
from app.core.config import body_bytes_for, default_of
from app.domain import errors

log = logging.getLogger("app.http")


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


class _LingeringTransport:
    """The socket transport as uvicorn sees it: `close()` after an early answer lingers
    (see the module's docstring) instead of closing at once."""

    def __init__(self, transport, protocol: "GuardedHttpToolsProtocol") -> None:
        self._transport = transport
        self._protocol = protocol
        self.lingering = False

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        p = self._protocol
        if (not self.lingering and not self._transport.is_closing() and p._phase == "body"
                and p.cycle is not None and p.cycle.response_complete and self._transport.can_write_eof()):
            self.lingering = True  # the answer is out, the body is still coming: read it, then close
            self._transport.write_eof()
            p.flow.resume_reading()
            return
        self._transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # the limits' defaults are the settings' (FACEAPI_REQUEST_*, FACEAPI_MAX_REQUEST_HEAD_BYTES);
    # guarded_protocol and protocol_for make a subclass with the limits in force
    head_timeout_s: float = default_of("request_head_timeout_s")
    body_idle_timeout_s: float = default_of("request_body_idle_timeout_s")
    body_timeout_s: float = default_of("request_body_timeout_s")
    body_min_rate: int = default_of("request_body_min_rate")  # bytes/s
    max_head_bytes: int = default_of("max_request_head_bytes")
    max_linger_bytes: int = body_bytes_for(default_of("max_upload_bytes"))  # the largest body

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._raw = transport
        self._phase = "head"  # head: waiting for a request head; body: reading its body; app: neither
        self._head_bytes = 0  # bytes of a head not yet complete, across writes
        self._head_size = 0  # bytes of the head being parsed (line and headers), as the parser sees them
        self._head_too_large = False
        self._timer: asyncio.TimerHandle | None = None
        self._linger_bytes = 0
        super().connection_made(_LingeringTransport(transport, self))
        self._arm(self.head_timeout_s)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "head" and self._timer is None:
            self._arm(self.head_timeout_s)  # the first byte of the next request on a kept-alive connection
        elif self._phase == "body":
            self._last_data = self.loop.time()
            self._body_bytes += len(data)
        if self.transport.lingering:
            self._linger_bytes += len(data)
            if self._linger_bytes > self.max_linger_bytes:
                self._close("the rest of a body after an early answer exceeds "
                            f"{self.max_linger_bytes} bytes")
                return
        super().data_received(data)
        if self._phase == "head" and not self.transport.is_closing():
            self._head_bytes += len(data)  # still no complete head after these bytes
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head_too_large()

    # --- the head's size, however it arrives ------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge  # stops the parser; uvicorn then calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head_too_large()
            return
        super().send_400_response(msg)

    def _refuse_head_too_large(self) -> None:
        self._refuse(errors.RequestHeaderTooLarge,
                     f"The request head exceeds {self.max_head_bytes} bytes")

    # --- phases ------------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._phase, self._head_bytes = "body", 0
        now = self.loop.time()
        self._body_started = self._last_data = self._last_tick = now
        self._body_bytes = 0
        self._arm(self._tick_s(), self._tick)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        answered = self.cycle is not None and self.cycle.response_complete
        self._phase = "head" if answered else "app"  # an early answer (401, 413) was already sent
        self._disarm()
        super().on_message_complete()
        if self.transport.lingering:  # the whole body is in: the early answer has been read, or will be
            self._raw.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase == "app":  # a response sent before its body was read keeps the body timer
            self._phase = "head"  # the timer starts with the next request's first byte

    def handle_websocket_upgrade(self) -> None:
        self._phase = "app"  # the websocket protocol takes the connection over: no deadlines here
        self._disarm()
        super().handle_websocket_upgrade()

    # --- timers ------------------------------------------------------------------------------

    def _tick_s(self) -> float:
        return min(1.0, self.body_idle_timeout_s / 4)

    def _arm(self, seconds: float, callback=None) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback or self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._raw.is_closing():
            return
        if self._phase == "head":
            self._refuse(errors.RequestTimeout,
                         f"The request head did not arrive within {self.head_timeout_s:g} s")

    def _tick(self) -> None:
        """Every second or so while a body arrives: the stall, rate and total-time limits."""
        self._timer = None
        if self._raw.is_closing() or self._phase != "body":
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server stopped reading, not the client: the clocks stop
            paused = now - self._last_tick
            self._body_started += paused
            self._last_data += paused
        self._last_tick = now
        elapsed = now - self._body_started
        if now - self._last_data >= self.body_idle_timeout_s:
            detail = f"The request body stalled for {self.body_idle_timeout_s:g} s"
        elif elapsed >= self.body_timeout_s:
            detail = f"The request body did not arrive within {self.body_timeout_s:g} s"
        elif elapsed >= self.body_idle_timeout_s and self._body_bytes < self.body_min_rate * elapsed:
            detail = (f"The request body arrives at {self._body_bytes / elapsed:.0f} bytes/s; "
                      f"the minimum is {self.body_min_rate} bytes/s")
        else:
            self._arm(self._tick_s(), self._tick)
            return
        self._refuse(errors.RequestTimeout, detail)

    # --- endings -----------------------------------------------------------------------------

    def _refuse(self, error: type[errors.DomainError], detail: str) -> None:
        """Answer (unless an answer has begun) and close; the app, if it is waiting for the
        body, then sees a disconnect."""
        self._disarm()
        answered = self._phase == "body" and self.cycle is not None and self.cycle.response_started
        if not answered:
            self._raw.write(raw_problem(error, detail))
        self._close(detail)

    def _close(self, why: str) -> None:
        self._disarm()
        client = "%s:%d" % self.client if self.client else "-"
        log.info("closing connection from %s: %s", client, why)
        self._raw.close()


def guarded_protocol(head_timeout_s: float, body_idle_timeout_s: float, max_head_bytes: int,
                     body_timeout_s: float = GuardedHttpToolsProtocol.body_timeout_s,
                     body_min_rate: int = GuardedHttpToolsProtocol.body_min_rate,
                     max_linger_bytes: int = GuardedHttpToolsProtocol.max_linger_bytes) -> type:
    """The protocol class with these limits, for uvicorn's `http=`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "head_timeout_s": head_timeout_s, "body_idle_timeout_s": body_idle_timeout_s,
        "max_head_bytes": max_head_bytes, "body_timeout_s": body_timeout_s,
        "body_min_rate": body_min_rate, "max_linger_bytes": max_linger_bytes})


def protocol_for(settings) -> type:
    return guarded_protocol(settings.request_head_timeout_s, settings.request_body_idle_timeout_s,
                            settings.max_request_head_bytes, settings.request_body_timeout_s,
                            settings.request_body_min_rate, settings.max_body_bytes)


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
