"""Pure verification logic: distances, match decisions, candidate ranking.

No FastAPI, no SQL. Embeddings are L2-normalised, and the metric is the cosine
distance d = 1 - <a, b> in [0, 2] (pgvector's `<=>`); a match is d <= threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return clamp_distance(1.0 - np.dot(np.asarray(a, np.float32), np.asarray(b, np.float32)))


def clamp_distance(d: float) -> float:
    """Into [0, 2]: float rounding of identical vectors gives -1e-7, which answers showed as
    -0.0 (and pgvector's may be as far off)."""
    return min(2.0, max(0.0, float(d)))


def similarity(distance: float) -> float:
    """Cosine similarity, 1 - distance: 1 identical, 0 unrelated, -1 opposite."""
    return 1.0 - distance


def is_match(distance: float, threshold: float) -> bool:
    return distance <= threshold


@dataclass(frozen=True)
class Candidate:
    person_id: str
    display_name: str | None
    distance: float
    template_size: int = 1  # photos pooled into the person's reference

    def __post_init__(self) -> None:
        object.__setattr__(self, "distance", clamp_distance(self.distance))

    @property
    def similarity(self) -> float:
        return similarity(self.distance)


def best_match(candidates: list[Candidate], threshold: float | list[float]) -> Candidate | None:
    """The nearest candidate when it is within its threshold, else None (unknown person).

    One threshold for all, or one per candidate (templates of different sizes: each
    candidate's is moved to its size). With several, "nearest" is the smallest margin
    distance - threshold, so a larger template's higher similarities do not outrank."""
    if not candidates:
        return None
    limits = threshold if isinstance(threshold, list) else [threshold] * len(candidates)
    best, limit = min(zip(candidates, limits), key=lambda cl: cl[0].distance - cl[1])
    return best if is_match(best.distance, limit) else None


def top_k_exact(matrix: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine distances of the k nearest rows, nearest first."""
    if len(matrix) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    distances = 1.0 - matrix @ np.asarray(query, np.float32)
    k = min(k, len(distances))
    part = np.argpartition(distances, k - 1)[:k]
    order = part[np.argsort(distances[part], kind="stable")]
    return order, distances[order]
