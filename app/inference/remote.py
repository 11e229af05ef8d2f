"""An Embedder served by TensorFlow Serving (REST predict API), used when
FACEAPI_EMBEDDER_URL is set, e.g. ``http://tfserving:8501/v1/models/faceapi``.

The exported SavedModel's `serving_default` signature takes float32 aligned faces
(0..255, [N, S, S, 3]; prewhitening is inside the model) and returns
``{"embeddings": [N, D]}``. The request uses the columnar format
``{"signature_name": ..., "inputs": ...}``; a row-format reply (``predictions``) is
accepted too. Model version and sizes come from the local artefact, which
must describe the model that the server runs (the embedding size is checked).

A predict call is idempotent, so a dropped connection, a timeout or an answer saying the
server is busy (429, 502, 503, 504) is retried with exponential backoff and jitter
(tenacity), a few times within a bounded delay; then the batch fails and its requests
get 503 `embedder_unavailable`.
"""

from __future__ import annotations

import logging

import httpx
import numpy as np
from tenacity import (
    before_sleep_log, retry, retry_if_exception_type, stop_after_attempt, stop_after_delay,
    wait_exponential_jitter,
)

from app.domain.vectors import l2_normalize
from app.inference.artifacts import ModelArtifact
from app.inference.embedder import check_faces

log = logging.getLogger("app.remote")
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RemoteEmbedderError(RuntimeError):
    pass


class TransientRemoteError(RemoteEmbedderError):
    """Worth another try: the server was unreachable or said it is busy."""


class RemoteEmbedder:
    def __init__(self, url: str, artifact: ModelArtifact, *, signature: str = "serving_default",
                 timeout_s: float = 30.0, client=None) -> None:
        self.url = url.rstrip("/")
        self.predict_url = self.url if self.url.endswith(":predict") else self.url + ":predict"
        self.signature = signature
        self.model_version = artifact.model_version
        self.embedding_dim = artifact.embedding_dim
        self.input_size = artifact.input_size
        self._client = client or httpx.Client(timeout=timeout_s)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        check_faces(faces, self.input_size)
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        body = {"signature_name": self.signature, "inputs": faces.astype(np.float32).tolist()}
        out = np.asarray(_embeddings_of(self._predict(body)), np.float32)
        if out.shape != (len(faces), self.embedding_dim):
            raise RemoteEmbedderError(f"embedder returned shape {out.shape}, expected "
                                      f"({len(faces)}, {self.embedding_dim}): does the served model "
                                      f"match artefact {self.model_version}?")
        return l2_normalize(out)

    @retry(retry=retry_if_exception_type(TransientRemoteError), reraise=True,
           stop=stop_after_attempt(4) | stop_after_delay(10),
           wait=wait_exponential_jitter(initial=0.2, max=2.0),
           before_sleep=before_sleep_log(log, logging.WARNING))
    def _predict(self, body: dict) -> dict:
        try:
            r = self._client.post(self.predict_url, json=body)
        except httpx.TransportError as exc:  # network errors: say where, not a bare traceback
            raise TransientRemoteError(f"embedder at {self.predict_url} unreachable: {exc}") from exc
        if r.status_code in RETRY_STATUSES:
            raise TransientRemoteError(f"embedder at {self.predict_url} answered {r.status_code}")
        if r.status_code != 200:
            raise RemoteEmbedderError(f"embedder at {self.predict_url} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def close(self) -> None:
        self._client.close()


def _embeddings_of(reply: dict):
    """`outputs` (columnar) or `predictions` (row format); a dict when the signature has
    several outputs, a bare list when it has one."""
    if "outputs" in reply:
        out = reply["outputs"]
        return out["embeddings"] if isinstance(out, dict) else out
    if "predictions" in reply:
        rows = reply["predictions"]
        return [row["embeddings"] if isinstance(row, dict) else row for row in rows]
    raise RemoteEmbedderError(f"unexpected TensorFlow Serving reply: {str(reply)[:200]}")
