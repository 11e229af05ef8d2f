"""A person's template: the one reference embedding that search uses, pooled from the
embeddings of all of the person's photos. Pure maths, no I/O.

The rule is the normalised mean of the L2-normalised embeddings (IJB-style template
pooling): with cosine distance, the mean direction is the point nearest on average to
every photo's embedding, so a photo that caught the person badly (pose, light, blur) pulls
the reference less than it would as the only photo. A detector-score-weighted mean was
measured against it on the validation identities (bench/templates.py, docs/benchmarks.md)
and changed TAR at FAR 1e-3 / 1e-4 by at most 0.001: YuNet scores every enrollable face
near 1, so the weights are nearly equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.domain.vectors import l2_normalize

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
    e = l2_normalize(e, np.float64)
    mean = e.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < _DEGENERATE_NORM:
        return e[0].astype(np.float32)
    return (mean / norm).astype(np.float32)


@dataclass(frozen=True)
class TemplateCalibration:
    """Thresholds for templates of k photos that keep the false-accept rate of a one-photo
    threshold.

    A pooled reference is nearer to everyone than one photo's embedding is: the mean of k unit
    vectors is shorter than 1, and normalising it scales every cosine similarity with it up
    (measured on the test identities: at the one-photo FAR 1e-3 threshold, templates of 3
    photos accept 1.7 % of impostor pairs). So the threshold moves with k. With F_k the
    impostor-pair distance CDF of k-photo templates, measured on the validation identities at
    shared rates, the threshold for k that accepts the same share of impostor pairs as the
    one-photo threshold t is

        t_k = F_k^-1(F_1(t)),

    a quantile-quantile map, linear between the shipped rates and shifted by the nearest
    shipped difference outside them. Sizes above the largest measured one use its map.
    """

    rates: tuple[float, ...]  # ascending
    distances: dict[int, tuple[float, ...]]  # k -> F_k^-1(rates), non-decreasing; k = 1 included
    pairs: dict[int, int]  # impostor pairs each row was measured on

    @property
    def max_size(self) -> int:
        return max(self.distances)

    def threshold(self, one_photo_threshold: float, template_size: int) -> float:
        """The threshold for a template of `template_size` photos (t itself for one photo)."""
        k = min(max(int(template_size), 1), self.max_size)
        if k == 1:
            return one_photo_threshold
        base = np.asarray(self.distances[1])
        target = np.asarray(self.distances[k])
        t = float(one_photo_threshold)
        if t <= base[0]:
            return round(t + float(target[0] - base[0]), 6)
        if t >= base[-1]:
            return round(t + float(target[-1] - base[-1]), 6)
        # base may hold ties (a plateau of equal quantiles): interpolate over the distinct points
        x, first = np.unique(base, return_index=True)
        return round(float(np.interp(t, x, target[first])), 6)

    def to_dict(self) -> dict:
        return {"rates": list(self.rates),
                "distances": {str(k): list(v) for k, v in sorted(self.distances.items())},
                "pairs": {str(k): v for k, v in sorted(self.pairs.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> "TemplateCalibration":
        """As shipped in metadata.json; ValueError when malformed."""
        rates = tuple(float(r) for r in data["rates"])
        dist = {int(k): tuple(float(x) for x in v) for k, v in data["distances"].items()}
        if 1 not in dist or len(rates) < 2:
            raise ValueError("template calibration needs the one-photo row (k = 1) and two rates or more")
        if any(b <= a for a, b in zip(rates, rates[1:])):
            raise ValueError("template calibration rates must rise strictly")
        for k, v in dist.items():
            if k < 1 or len(v) != len(rates) or any(b < a for a, b in zip(v, v[1:])):
                raise ValueError(f"template calibration row {k}: one non-decreasing distance per rate")
        return cls(rates, dist, {int(k): int(v) for k, v in (data.get("pairs") or {}).items()})

    @classmethod
    def from_impostor_distances(cls, by_size: dict[int, np.ndarray], rates: np.ndarray) -> "TemplateCalibration":
        """Empirical quantiles of each size's impostor-pair distances at `rates` (the trainer's
        side: bench/templates.py calibrate)."""
        dist, pairs = {}, {}
        for k, d in by_size.items():
            d = np.sort(np.asarray(d, np.float64))
            idx = np.maximum(1, np.floor(rates * len(d)).astype(np.int64)) - 1
            dist[int(k)] = tuple(round(float(x), 6) for x in d[idx])
            pairs[int(k)] = int(len(d))
        return cls(tuple(round(float(r), 10) for r in rates), dist, pairs)
