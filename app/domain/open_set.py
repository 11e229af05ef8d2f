"""Open-set identification: the distance threshold for a target false-positive
identification rate (FPIR) at the current gallery size. Pure maths, no I/O.

A stranger's photo compared with a gallery of N people is named as someone when its
nearest enrolled embedding is within the threshold t. With F(t) the impostor-pair CDF
(the share of pairs of different people at distance <= t) and the N comparisons taken
as independent,

    FPIR(t, N) = 1 - (1 - F(t))^N      so      t = F^-1(1 - (1 - FPIR)^(1/N)).

Independence is conservative for the two departures seen in practice: probes that are
close to many people ("wolves": F varies per probe, and 1 - (1 - x)^N is concave, so
the mean over probes is at most the formula of the mean F) and positively correlated
distances (the minimum of associated variables is less extreme than of independent
ones). bench/identify_fpir.py checks it on data.

F is known from the artefact: the low tail of the distances of all impostor pairs among
the validation identities, shipped in metadata.json as quantiles at log-spaced rates.
Between two shipped rates the quantile is interpolated linearly in (log rate, distance).
Below the smallest measured rate (about 20 pairs in the sample: beyond it the sample says
nothing), the tail is extrapolated as a normal tail, probit(F(d)) linear in d, with the
slope fitted on the lowest two measured decades and anchored at the lowest point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_PROBIT = NormalDist()
MIN_PAIRS_AT_RATE = 20  # a shipped quantile rests on at least this many impostor pairs
RATES_PER_DECADE = 8
MAX_RATE = 0.5


def per_pair_rate(fpir: float, gallery_size: int) -> float:
    """The impostor-pair acceptance rate F(t) that gives `fpir` over `gallery_size` people."""
    if not 0.0 < fpir < 1.0:
        raise ValueError("fpir must be in (0, 1)")
    n = max(int(gallery_size), 1)
    return -math.expm1(math.log1p(-fpir) / n)  # 1 - (1 - fpir)^(1/n), exact for tiny rates


def fpir_at(pair_rate: float, gallery_size: int) -> float:
    """FPIR of a threshold whose impostor-pair acceptance rate is `pair_rate`: 1 - (1 - F)^N."""
    n = max(int(gallery_size), 1)
    if pair_rate >= 1.0:
        return 1.0
    return -math.expm1(n * math.log1p(-pair_rate))


@dataclass(frozen=True)
class ImpostorTail:
    """Quantiles of the impostor-pair distance: F(distances[i]) = rates[i], both ascending."""

    rates: tuple[float, ...]
    distances: tuple[float, ...]
    pairs: int  # impostor pairs the quantiles were measured on
    slope: float  # d probit(F) / d distance below rates[0] (normal-tail extrapolation)

    # --- building (the trainer) and shipping ---------------------------------------------

    @classmethod
    def from_distances(cls, impostor_distances: np.ndarray, id_a: np.ndarray | None = None,
                       id_b: np.ndarray | None = None, confidence: float = 0.99, n_boot: int = 200,
                       seed: int = 0) -> ImpostorTail:
        """The tail of a sample of impostor-pair distances (all pairs of a validation set).

        With the pairs' identities (id_a, id_b), each quantile is the one-sided `confidence`
        lower bound over a bootstrap of identities: the tail is a property of the people
        sampled more than of the pairs (a few look-alike pairs of people make most of it),
        and 60 validation identities are a small sample of people. Measured on the CelebA
        subset (MTCNN detections), the plain quantiles of the validation identities accepted
        1.4x their rate of the test identities' pairs, and galleries of test identities
        exceeded the target FPIR with a 95 % bound; with 99 % (YuNet) they measure 0.8-1.2x
        the target (docs/benchmarks.md, bench/identify_fpir.py).
        """
        d = np.asarray(impostor_distances, np.float64).ravel()
        n = len(d)
        if n < MIN_PAIRS_AT_RATE * 100:
            raise ValueError(f"{n} impostor pairs are too few for a tail (need {MIN_PAIRS_AT_RATE * 100})")
        lo = math.ceil(math.log10(MIN_PAIRS_AT_RATE / n) * RATES_PER_DECADE)
        hi = math.floor(math.log10(MAX_RATE) * RATES_PER_DECADE)
        rates = np.array([10 ** (k / RATES_PER_DECADE) for k in range(lo, hi + 1)])
        order = np.argsort(d, kind="mergesort")
        d = d[order]
        # the k-th smallest distance, k = floor(rate * n): accepting up to it accepts at most
        # a share `rate` of the sample (the conservative side of the empirical quantile)
        dist = d[np.maximum(1, np.floor(rates * n).astype(np.int64)) - 1]
        if id_a is not None and id_b is not None:
            dist = np.minimum(dist, _bootstrap_lower_quantiles(
                d, np.asarray(id_a)[order], np.asarray(id_b)[order], rates, confidence, n_boot, seed))
        return cls(tuple(round(float(r), 10) for r in rates), tuple(round(float(x), 6) for x in dist), n,
                   _probit_slope(rates, dist))

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "rates": list(self.rates), "distances": list(self.distances),
                "extrapolation": {"model": "normal tail: probit(F) linear in distance below the "
                                           "smallest rate", "slope": round(self.slope, 6)}}

    @classmethod
    def from_dict(cls, data: dict) -> ImpostorTail:
        """The tail as shipped in metadata.json; ValueError when it is malformed."""
        rates = tuple(float(r) for r in data["rates"])
        dist = tuple(float(x) for x in data["distances"])
        if len(rates) < 2 or len(rates) != len(dist):
            raise ValueError("the impostor tail needs at least two (rate, distance) points of equal count")
        if any(b <= a for a, b in zip(rates, rates[1:])) or any(b < a for a, b in zip(dist, dist[1:])):
            raise ValueError("the impostor tail's rates must rise strictly and its distances must not fall")
        if not (0.0 < rates[0] and rates[-1] < 1.0):
            raise ValueError("the impostor tail's rates must lie in (0, 1)")
        slope = float((data.get("extrapolation") or {}).get("slope") or _probit_slope(rates, dist))
        if slope <= 0:
            raise ValueError("the impostor tail's extrapolation slope must be positive")
        return cls(rates, dist, int(data.get("pairs", 0)), slope)

    # --- using ------------------------------------------------------------------------------

    @property
    def min_measured_rate(self) -> float:
        return self.rates[0]

    def quantile(self, rate: float) -> float:
        """F^-1(rate): the distance at which a share `rate` of impostor pairs is accepted."""
        if rate <= self.rates[0]:
            z = _PROBIT.inv_cdf(max(rate, 1e-300)) - _PROBIT.inv_cdf(self.rates[0])
            return self.distances[0] + z / self.slope
        if rate >= self.rates[-1]:
            return self.distances[-1]
        return float(np.interp(math.log(rate), np.log(self.rates), self.distances))

    def cdf(self, distance: float) -> float:
        """F(distance), the inverse of `quantile` (for reporting)."""
        if distance <= self.distances[0]:
            z = _PROBIT.inv_cdf(self.rates[0]) + (distance - self.distances[0]) * self.slope
            return _PROBIT.cdf(z)
        if distance >= self.distances[-1]:
            return self.rates[-1]
        return float(np.exp(np.interp(distance, self.distances, np.log(self.rates))))


def _bootstrap_lower_quantiles(d_sorted, a, b, rates, confidence, n_boot, seed) -> np.ndarray:
    """Per rate, the (1 - confidence) percentile over identity-bootstrap replicates of the
    quantile: a replicate draws K identities with replacement; identity i drawn m_i times
    weighs a pair of i and j m_i * m_j."""
    _, inverse = np.unique(np.r_[a, b], return_inverse=True)
    a, b = inverse[: len(a)], inverse[len(a):]
    k = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, len(rates)))
    for i in range(n_boot):
        m = rng.multinomial(k, np.full(k, 1.0 / k)).astype(np.float64)
        cum = np.cumsum(m[a] * m[b])
        if cum[-1] <= 0:
            reps[i] = d_sorted[0]
            continue
        # the largest distance whose weighted share of pairs at or below it is <= rate
        idx = np.searchsorted(cum / cum[-1], rates, side="right") - 1
        reps[i] = d_sorted[np.maximum(idx, 0)]
    return np.quantile(reps, 1.0 - confidence, axis=0)


def _probit_slope(rates, distances) -> float:
    """Least-squares slope of probit(rate) against distance over the lowest two decades."""
    r = np.asarray(rates, np.float64)
    d = np.asarray(distances, np.float64)
    low = r <= r[0] * 100
    if low.sum() < 2:
        low[:2] = True
    z = np.array([_PROBIT.inv_cdf(x) for x in r[low]])
    dd = d[low]
    var = float(np.sum((dd - dd.mean()) ** 2))
    if var <= 0:
        raise ValueError("the impostor tail's lowest distances do not vary; cannot fit its slope")
    return float(np.sum((dd - dd.mean()) * (z - z.mean())) / var)


@dataclass(frozen=True)
class IdentifyThreshold:
    """How identify decides, as reported in each response."""

    threshold: float  # used for `match`: min(FPIR threshold, 1:1 threshold)
    gallery_size: int
    target_fpir: float | None  # None: no impostor tail, the 1:1 threshold is used
    verify_threshold: float
    pair_rate: float | None  # F(t) the FPIR target asks for
    extrapolated: bool  # the rate lies below the measured tail
    source: str  # "fpir" or "verify" (the 1:1 threshold was the stricter one, or no tail)


def identify_threshold(tail: ImpostorTail | None, target_fpir: float, gallery_size: int,
                       verify_threshold: float) -> IdentifyThreshold:
    """The identification threshold for `gallery_size` enrolled people.

    Never looser than the 1:1 threshold: identify must not name someone whom verify
    would reject, so for small galleries (N < about FPIR / FAR_1:1) the 1:1 threshold
    governs and the FPIR stays below its target. Without a tail, the 1:1 threshold.
    """
    n = max(int(gallery_size), 0)
    if tail is None:
        return IdentifyThreshold(verify_threshold, n, None, verify_threshold, None, False, "verify")
    rate = per_pair_rate(target_fpir, n)
    t = tail.quantile(rate)
    source = "fpir" if t < verify_threshold else "verify"
    return IdentifyThreshold(round(min(t, verify_threshold), 6), n, target_fpir, verify_threshold, rate,
                             rate < tail.min_measured_rate, source)
