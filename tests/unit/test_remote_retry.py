"""The TF Serving client retries its idempotent predict call on transient failures only,
through a real httpx client whose transport plays the server."""

from pathlib import Path

import httpx
import numpy as np
import pytest

from app.inference.artifacts import ModelArtifact
from app.inference.remote import RemoteEmbedder, RemoteEmbedderError

DIM, SIZE = 4, 8
ARTIFACT = ModelArtifact.from_json(Path("."), {
    "model_version": "remote-test", "embedding_dim": DIM, "embedder": {"input_size": SIZE}, "threshold": 0.5,
    "alignment": {"size": SIZE, "template": [[2, 3], [6, 3], [4, 5], [2, 7], [6, 7]]}})
FACES = np.zeros((2, SIZE, SIZE, 3), np.uint8)


def embedder_answering(*answers):
    """A RemoteEmbedder whose server gives `answers` in turn: a status code or an exception."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(calls), len(answers) - 1)]
        calls.append(request)
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            return httpx.Response(200, json={"outputs": [[1.0, 0, 0, 0], [0, 2.0, 0, 0]]})
        return httpx.Response(answer, text="busy")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return RemoteEmbedder("http://tfs:8501/v1/models/m", ARTIFACT, client=client), calls


def test_busy_answers_and_dropped_connections_are_retried():
    emb, calls = embedder_answering(503, httpx.ConnectError("refused"), 200)
    out = emb.embed(FACES)
    assert len(calls) == 3
    np.testing.assert_allclose(out, [[1, 0, 0, 0], [0, 1, 0, 0]])


def test_retries_are_bounded():
    emb, calls = embedder_answering(httpx.ConnectError("refused"))
    with pytest.raises(RemoteEmbedderError, match="unreachable"):
        emb.embed(FACES)
    assert len(calls) == 4


def test_a_client_error_is_not_retried():
    emb, calls = embedder_answering(400)
    with pytest.raises(RemoteEmbedderError, match="400"):
        emb.embed(FACES)
    assert len(calls) == 1
