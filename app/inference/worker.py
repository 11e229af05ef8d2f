"""The inference worker: one owner of the model, micro-batching concurrent requests.

Requests wait in an asyncio queue. The worker takes the first one, gathers more
until the batch is full or `max_wait_ms` has passed, and runs the batch on a
single dedicated thread (so the event loop never blocks and the model is never
called concurrently). While a batch runs, new requests queue up and form the next
batch, so under load batches fill without any waiting. The worker is the same for
every runtime (app/inference/runtimes.py: LiteRT, Keras/TensorFlow, which places the work
on a GPU when it sees one, or TensorFlow Serving): it only calls `embedder.embed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from app.core.config import default_of
from app.domain import errors
from app.inference.embedder import Embedder

log = logging.getLogger("app.worker")


@dataclass
class WorkerStats:
    batches: int = 0
    faces: int = 0
    last_batch_size: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # recent, bounded

    def record(self, size: int) -> None:
        self.batches += 1
        self.faces += size
        self.last_batch_size = size
        self.batch_sizes.append(size)
        del self.batch_sizes[:-1000]


class BatchingWorker:
    """`max_queue` bounds the faces waiting for the model: one more is refused at once with
    `overloaded`. A failing model fails only its batch, as `embedder_unavailable`.

    `more_coming()` (optional) says whether other requests are on their way to the model (e.g.
    in detection): when none are, a lone face runs at once instead of waiting `max_wait_ms`
    for company that cannot come (with one client that wait was ~10 % of a /verify)."""

    def __init__(self, embedder: Embedder, max_batch: int = default_of("batch_max_size"),
                 max_wait_ms: float = default_of("batch_max_wait_ms"),
                 on_batch=None, max_queue: int = 0,
                 more_coming: Callable[[], bool] | None = None) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_queue = max_queue  # 0: unbounded
        self.max_wait = max_wait_ms / 1000.0
        self.stats = WorkerStats()
        self._on_batch = on_batch  # callback(size, seconds), e.g. Prometheus
        self._more_coming = more_coming
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embedder")
        self._closing = False

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue else 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="embedding-worker")

    async def embed(self, face: np.ndarray) -> np.ndarray:
        """Embedding of one aligned face, computed in whatever batch it lands in."""
        if self._closing or not self.running:
            raise errors.NotReady("The service is starting or stopping; retry shortly")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((face, future))
        except asyncio.QueueFull:
            raise errors.Overloaded(f"{self.max_queue} faces are waiting for the model; "
                                    "retry in a moment") from None
        return await future

    async def run_direct(self, faces: np.ndarray) -> np.ndarray:
        """A whole batch on the model thread (warm-up, bulk jobs), bypassing the queue."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embedder.embed, faces)

    async def stop(self) -> None:
        """Refuse new work, finish everything queued, then stop."""
        self._closing = True
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)  # sentinel behind all queued work
            await self._task
        self._executor.shutdown(wait=True)

    async def _next_batch(self) -> tuple[list, bool]:
        first = await self._queue.get()
        if first is None:
            return [], True
        batch, stop = [first], False
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._more_coming is not None and not self._more_coming()):
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, stop = await self._next_batch()
            if batch:
                faces = np.stack([face for face, _ in batch])
                started = time.perf_counter()
                try:
                    vectors = await loop.run_in_executor(self._executor, self.embedder.embed, faces)
                except Exception as exc:  # fail the requests of this batch, keep serving
                    log.exception("embedding batch of %d failed", len(batch))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(errors.EmbedderUnavailable(
                                f"The face embedder failed ({type(exc).__name__}); retry shortly"))
                else:
                    for (_, fut), vec in zip(batch, vectors):
                        if not fut.done():  # the client may have gone away
                            fut.set_result(vec)
                self.stats.record(len(batch))
                if self._on_batch:
                    self._on_batch(len(batch), time.perf_counter() - started)
            if stop:
                return
