"""Token buckets of `per_minute` requests, refilled continuously, in bounded memory.

Used twice: per API key (keyed by the key's SHA-256 digest, never the key; or per client
address when auth is off) and for failed key checks per client address. Buckets live in
an LRU map of at most `max_buckets`: a flood of new addresses evicts the least recently
seen, so memory stays bounded (an evicted bucket starts full again, which only forgives).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = 10_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # id -> (tokens, time)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, bucket_id: str, now: float) -> float:
        tokens, last = self._buckets.get(bucket_id, (self.capacity, now))
        return min(self.capacity, tokens + (now - last) * self.rate)

    def wait(self, bucket_id: str) -> float:
        """Seconds until `bucket_id` has a token (0.0: it has one now); takes nothing."""
        now = self.clock()
        with self._lock:
            tokens = self._tokens(bucket_id, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def acquire(self, bucket_id: str) -> float:
        """Take one token: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens = self._tokens(bucket_id, now)
            allowed = tokens >= 1.0
            self._buckets[bucket_id] = (tokens - 1.0 if allowed else tokens, now)
            self._buckets.move_to_end(bucket_id)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self.rate


class RecentSet:
    """The `max_items` most recently added strings (an LRU set), thread-safe."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, item: str) -> None:
        with self._lock:
            self._items[item] = None
            self._items.move_to_end(item)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __contains__(self, item: str) -> bool:
        with self._lock:
            return item in self._items
