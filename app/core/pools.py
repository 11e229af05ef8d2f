"""Bounded admission in front of the blocking stages: when a stage already holds as many
requests as it may (running plus waiting), a new one is refused at once with 503
`overloaded` instead of joining a queue whose wait would exceed any client's patience."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.core import errors

T = TypeVar("T")


class BoundedPool:
    """A thread pool that admits at most `max_pending` calls at a time (running + queued)."""

    def __init__(self, threads: int, max_pending: int, name: str) -> None:
        self.max_pending = max_pending
        self.name = name
        self.pending = 0  # touched only on the event loop thread: no lock needed
        self.refused = 0
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args) -> T:
        if self.pending >= self.max_pending:
            self.refused += 1
            raise errors.Overloaded(f"The {self.name} queue is full ({self.max_pending} requests); "
                                    "retry in a moment")
        self.pending += 1
        work = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        work.add_done_callback(self._release)
        # shielded: a client that goes away does not stop the thread, so the slot stays
        # taken until the work is really done
        return await asyncio.shield(work)

    def _release(self, work: asyncio.Future) -> None:
        self.pending -= 1
        if not work.cancelled():
            work.exception()  # retrieved here, so an abandoned failure is not reported twice

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
