"""Bounded admission in front of the blocking stages: when a stage already holds as many
requests as it may (running plus waiting), a new one is refused at once with 503
`overloaded` instead of joining a queue whose wait would exceed any client's patience.

A stage can also admit by cost: each call names its cost (detection: the pixels its photo
decodes to) and the calls in progress may hold at most `max_cost` together. A count alone
let eight 40-megapixel PNGs (116 KB each, 3.7 s of CPU and 500 MB each) in at once, and
ordinary photos waited 16 s behind them. One call is always admitted when nothing else is
in progress, so a photo within the pixel limit is never refused on an idle server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.domain import errors

T = TypeVar("T")


class BoundedPool:
    """A thread pool that admits at most `max_pending` calls at a time (running + queued)."""

    def __init__(self, threads: int, max_pending: int, name: str, max_cost: int | None = None,
                 unit: str = "") -> None:
        self.max_pending = max_pending
        self.max_cost = max_cost
        self.unit = unit
        self.name = name
        self.pending = 0  # touched only on the event loop thread: no lock needed
        self.cost = 0  # the summed cost of the calls in progress
        self.refused = 0
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args, cost: int = 0) -> T:
        if self.pending >= self.max_pending:
            self.refused += 1
            raise errors.Overloaded(f"The {self.name} queue is full ({self.max_pending} requests); "
                                    "retry in a moment")
        if self.max_cost is not None and self.pending and self.cost + cost > self.max_cost:
            self.refused += 1
            raise errors.Overloaded(f"The {self.name} stage holds {self.cost} {self.unit} in progress; "
                                    f"this request adds {cost} (the limit is {self.max_cost}); "
                                    "retry in a moment")
        self.pending += 1
        self.cost += cost
        work = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        work.add_done_callback(lambda w: self._release(w, cost))
        # shielded: a client that goes away does not stop the thread, so the slot stays
        # taken until the work is really done
        return await asyncio.shield(work)

    def _release(self, work: asyncio.Future, cost: int = 0) -> None:
        self.pending -= 1
        self.cost -= cost
        if not work.cancelled():
            work.exception()  # retrieved here, so an abandoned failure is not reported twice

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
