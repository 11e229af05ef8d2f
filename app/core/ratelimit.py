"""Per-API-key rate limit: a token bucket of `per_minute` requests, refilled continuously.

Buckets are keyed by the key's SHA-256 digest (never the key) and exist only for keys that
authenticated, so their number is bounded by the number of issued keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, last time)
        self._lock = threading.Lock()

    def acquire(self, bucket_id: str) -> float:
        """Take one token: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(bucket_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[bucket_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[bucket_id] = (tokens, now)
            return (1.0 - tokens) / self.rate
