import asyncio
import threading

import numpy as np
import pytest

from app.domain import errors
from app.inference.worker import BatchingWorker


class RecordingEmbedder:
    model_version, embedding_dim, input_size = "rec", 4, 2

    def __init__(self):
        self.batches, self.threads = [], set()

    def embed(self, faces):
        self.batches.append(len(faces))
        self.threads.add(threading.get_ident())
        return np.repeat(faces.reshape(len(faces), -1)[:, :1].astype(np.float32), 4, axis=1)


def faces(n):
    return [np.full((2, 2, 3), i, np.uint8) for i in range(n)]


def test_concurrent_requests_are_batched_and_answered_in_order():
    async def main():
        emb = RecordingEmbedder()
        worker = BatchingWorker(emb, max_batch=8, max_wait_ms=50)
        await worker.start()
        results = await asyncio.gather(*(worker.embed(f) for f in faces(20)))
        await worker.stop()
        return emb, results

    emb, results = asyncio.run(main())
    assert [r[0] for r in results] == list(range(20))  # each caller gets its own row
    assert sum(emb.batches) == 20 and max(emb.batches) == 8 and len(emb.batches) == 3
    assert len(emb.threads) == 1  # one owner thread for the model


def test_batch_size_one_disables_batching():
    async def main():
        emb = RecordingEmbedder()
        worker = BatchingWorker(emb, max_batch=1, max_wait_ms=50)
        await worker.start()
        await asyncio.gather(*(worker.embed(f) for f in faces(5)))
        await worker.stop()
        return emb

    assert asyncio.run(main()).batches == [1] * 5


def test_stop_drains_queued_work_and_then_refuses():
    async def main():
        worker = BatchingWorker(RecordingEmbedder(), max_batch=4, max_wait_ms=1)
        await worker.start()
        pending = [asyncio.create_task(worker.embed(f)) for f in faces(10)]
        await asyncio.sleep(0)
        await worker.stop()
        done = await asyncio.gather(*pending)
        with pytest.raises(errors.NotReady):
            await worker.embed(faces(1)[0])
        return done

    assert len(asyncio.run(main())) == 10


def test_a_failing_batch_fails_its_requests_only():
    class Flaky(RecordingEmbedder):
        def embed(self, faces):
            if faces[0, 0, 0, 0] == 0:
                raise RuntimeError("boom")
            return super().embed(faces)

    async def main():
        worker = BatchingWorker(Flaky(), max_batch=1, max_wait_ms=0)
        await worker.start()
        results = await asyncio.gather(*(worker.embed(f) for f in faces(3)), return_exceptions=True)
        await worker.stop()
        return results

    results = asyncio.run(main())
    # a model failure is the embedder's unavailability (503), not an internal error (500)
    assert isinstance(results[0], errors.EmbedderUnavailable) and "boom" not in str(results[0])
    assert results[1][0] == 1 and results[2][0] == 2


def test_a_full_queue_refuses_at_once():
    """Load shedding: with `max_queue` faces waiting, the next one is refused immediately
    (`overloaded`), and those admitted are still answered."""
    gate = threading.Event()

    class Slow(RecordingEmbedder):
        def embed(self, faces):
            gate.wait(120)  # held until the test lets it go
            return super().embed(faces)

    async def main():
        worker = BatchingWorker(Slow(), max_batch=1, max_wait_ms=0, max_queue=2)
        await worker.start()
        running = asyncio.create_task(worker.embed(faces(1)[0]))  # taken by the model thread
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(worker.embed(f)) for f in faces(2)]
        await asyncio.sleep(0)
        with pytest.raises(errors.Overloaded):
            await worker.embed(faces(1)[0])
        # refused while the model is still held: it did not wait for a slot to free
        refused_while_busy = not gate.is_set() and not running.done()
        gate.set()
        answers = await asyncio.gather(running, *queued)
        await worker.stop()
        return refused_while_busy, answers

    refused_while_busy, answers = asyncio.run(main())
    assert refused_while_busy and len(answers) == 3


def test_a_lone_face_does_not_wait_when_nothing_else_is_coming():
    # max_wait 10 min: a face that waited for company would outlast the 60 s allowed here
    async def main():
        worker = BatchingWorker(RecordingEmbedder(), max_batch=8, max_wait_ms=600_000,
                                more_coming=lambda: False)
        await worker.start()
        row = await asyncio.wait_for(worker.embed(faces(1)[0]), 60)
        await worker.stop()
        return row

    assert asyncio.run(main()).shape == (4,)


def test_faces_still_wait_for_requests_in_detection_and_share_a_batch():
    async def main():
        emb = RecordingEmbedder()
        in_detection = {"n": 1}
        # max_wait 10 min: only the end of detection, not a timer, may close this batch
        worker = BatchingWorker(emb, max_batch=8, max_wait_ms=600_000,
                                more_coming=lambda: in_detection["n"] > 0)
        await worker.start()
        first = asyncio.create_task(worker.embed(faces(1)[0]))
        await asyncio.sleep(0.2)  # the second request is still being detected
        in_detection["n"] = 0
        second = asyncio.create_task(worker.embed(faces(2)[1]))
        await asyncio.gather(first, second)
        await worker.stop()
        return emb.batches

    assert asyncio.run(main()) == [2]
