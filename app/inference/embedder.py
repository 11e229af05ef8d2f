"""The one interface the service needs from a face model."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    model_version: str
    embedding_dim: int
    input_size: int

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """[N, S, S, 3] uint8 aligned RGB faces -> [N, D] float32 L2-normalised embeddings.

        Blocking; called from one worker thread only.
        """


def check_faces(faces: np.ndarray, input_size: int) -> None:
    """The shape every embedder takes: ValueError for anything but [N, S, S, 3]."""
    s = input_size
    if faces.ndim != 4 or faces.shape[1:] != (s, s, 3):
        raise ValueError(f"expected [N,{s},{s},3] faces, got {faces.shape}")
