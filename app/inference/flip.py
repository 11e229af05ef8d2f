"""Flip test-time augmentation: a face's embedding is that of the face plus that of its mirror
image, each L2-normalised, summed and normalised again. An artefact asks for it with
`"flip": true` in its `embedder` block; it doubles the embedder's work per face (both images
run in one batch)."""

from __future__ import annotations

import numpy as np

from app.domain.vectors import l2_normalize
from app.inference.embedder import Embedder


class FlipAveraged:
    """An Embedder that averages `inner`'s embeddings of each face and its mirror image."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_version = inner.model_version
        self.embedding_dim = inner.embedding_dim
        self.input_size = inner.input_size

    def embed(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4:
            return self.inner.embed(faces)  # the inner embedder says what is wrong with the shape
        both = self.inner.embed(np.concatenate([faces, faces[:, :, ::-1]]))
        n = len(faces)
        return l2_normalize(l2_normalize(both[:n]) + l2_normalize(both[n:]))
