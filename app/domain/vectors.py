"""The one L2 normalisation of embeddings (the Keras and TF graphs have their own op)."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Rows (the last axis) scaled to unit length, as `dtype`; an all-zero row stays zero."""
    x = np.asarray(x, dtype=dtype)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
