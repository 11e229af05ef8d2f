"""Prometheus metrics in a registry owned by the app instance (no global state),
and JSON logs that carry a request id. Logs never hold image data, embeddings or keys."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("faceapi_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("faceapi_request_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("faceapi_embed_batch_size", "Faces per model batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.batch_seconds = Histogram("faceapi_embed_batch_seconds", "Model time per batch",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("faceapi_embed_queue_depth", "Faces waiting for the model",
                                 registry=self.registry)
        self.detect_pending = Gauge("faceapi_detect_pending", "Requests in detection, running or waiting",
                                    registry=self.registry)
        self.rate_limited = Counter("faceapi_rate_limited_total",
                                    "Requests refused by a rate limit (per key, or failed keys per address)",
                                    registry=self.registry)
        self.enrolled = Gauge("faceapi_enrolled_persons", "Persons in the search index",
                              registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key in ("method", "path", "status", "ms", "route"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    if not as_json:
        handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):  # our middleware logs each request once, with its id
        logging.getLogger(noisy).disabled = True


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
