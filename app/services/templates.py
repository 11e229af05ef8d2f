"""A person's template: the one reference embedding that search uses, pooled from the
embeddings of all of the person's photos. Pure maths, no I/O.

The rule is the normalised mean of the L2-normalised embeddings (IJB-style template
pooling): with cosine distance, the mean direction is the point nearest on average to
every photo's embedding, so a photo that caught the person badly (pose, light, blur) pulls
the reference less than it would as the only photo. A detector-score-weighted mean was
measured against it on the validation identities (bench/templates.py, docs/benchmarks.md)
and gained nothing: YuNet's score is near 1 for every enrollable face, so the weights are
nearly equal.
"""

from __future__ import annotations

import numpy as np

# below this norm of the mean the photos point in (nearly) opposite directions: no mean
# direction exists, and the first photo stays the reference
_DEGENERATE_NORM = 1e-6


def pool(embeddings: np.ndarray) -> np.ndarray:
    """The template of a person from their photos' embeddings (rows), as float32, unit norm."""
    e = np.asarray(embeddings, np.float64)
    if e.ndim == 1:
        e = e[None, :]
    if len(e) == 0:
        raise ValueError("a template needs at least one embedding")
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    mean = e.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < _DEGENERATE_NORM:
        return e[0].astype(np.float32)
    return (mean / norm).astype(np.float32)


def pool_weighted(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The alternative measured against `pool`: each photo's normalised embedding weighted
    (e.g. by its detector score) before the normalised mean."""
    e = np.asarray(embeddings, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    w = np.asarray(weights, np.float64).reshape(-1, 1)
    mean = (w * e).sum(axis=0)
    norm = np.linalg.norm(mean)
    if norm < _DEGENERATE_NORM:
        return e[0].astype(np.float32)
    return (mean / norm).astype(np.float32)
