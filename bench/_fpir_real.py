"""FPIR and FNIR of real galleries as exact expectations over every gallery of N people.

A random draw of galleries measures FPIR with Monte-Carlo noise on top of the noise of
which people are in the data; at N = 10 and a target of 0.01 twenty draws leave an interval
as wide as the target. Here the draw is averaged out exactly. For a gallery G of N people
drawn uniformly from a pool of K, each enrolled with one of their enrollable photos drawn
uniformly, a stranger photo s of person j (j not in G) is named when some g in G has its
enroll photo within t of s:

    P(s named) = 1 - E_G[ prod_{g in G} (1 - p_sg) ],   p_sg = share of g's enrollable photos within t of s,

and E_G of a product over a uniform N-subset of the K - 1 others is a symmetric-polynomial
mean, computed by one pass over the columns (`subset_mean_product`). A mated probe s of
person i, enrolled with photo e, is found when d(s, e) <= t and no other enrolled person's
photo is nearer: the same mean with p_sg = share of g's enrollable photos nearer than d(s, e).
FPIR averages over stranger people (each person's photos averaged first), FNIR over enrolled
people: the unit the population is sampled in.

What remains is the sampling of people, which no number of draws reduces: the 95 % interval
resamples identities (a bootstrap; the ratio of the resampled mean impostor-pair acceptance
to the observed one scales FPIR, exact to first order in N·F).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOT = 2000


def subset_mean_product(q: np.ndarray, n: int) -> np.ndarray:
    """Per row of q (rows x m, values in [0, 1]): the mean over all n-subsets S of the m
    columns of prod_{c in S} q[row, c].

    With a_k = e_k / C(c, k) (e_k the k-th elementary symmetric polynomial of the first c
    columns), adding a column x gives a_k' = ((c + 1 - k) a_k + k x a_{k-1}) / (c + 1): a
    convex combination, so no overflow and no cancellation for any m and n.
    """
    rows, m = q.shape
    if not 0 <= n <= m:
        raise ValueError(f"cannot draw {n} of {m} columns")
    a = np.zeros((rows, n + 1))
    a[:, 0] = 1.0
    for c in range(m):
        top = min(n, c + 1)
        k = np.arange(1, top + 1)
        a[:, 1:top + 1] = ((c + 1 - k) * a[:, 1:top + 1] + k * q[:, c, None] * a[:, :top]) / (c + 1)
    return a[:, n]


@dataclass
class Pool:
    """The people of one pool: every photo with a face, the enrollable ones, per person."""

    name: str
    emb: np.ndarray  # (photos, d) float32
    person: np.ndarray  # (photos,) 0..K-1
    enroll: np.ndarray  # (enrollable,) row of `emb`, sorted by person
    seen_by_embedder: bool

    def __post_init__(self) -> None:
        self.k = int(self.person.max()) + 1
        ep = self.person[self.enroll]
        self.enroll_start = np.searchsorted(ep, np.arange(self.k))
        self.enroll_count = np.bincount(ep, minlength=self.k)
        # distances from every photo to every enrollable photo (a few thousand squared)
        self.dist = 1.0 - self.emb @ self.emb[self.enroll].T
        self.photos_of = [np.flatnonzero(self.person == p) for p in range(self.k)]

    def share_within(self, below: np.ndarray) -> np.ndarray:
        """(len(rows), K): per person, the share of their enrollable photos flagged in `below`."""
        return np.add.reduceat(below.astype(np.float64), self.enroll_start, axis=1) / self.enroll_count

    def measure(self, n: int, t: float, seed: int = 0) -> dict:
        """Exact FPIR and FNIR at threshold t for galleries of n people of this pool."""
        k = self.k
        named = np.zeros(k)  # per stranger person: mean P(named) over their photos
        pair_rate = np.zeros((k, k))  # mean share of g's enroll photos within t of j's photos
        missed = np.full(k, np.nan)  # per enrolled person: mean P(missed) over (probe, enroll photo)
        for j in range(k):
            rows = self.photos_of[j]
            p = self.share_within(self.dist[rows] <= t)
            others = np.r_[0:j, j + 1:k]
            pair_rate[j, others] = p[:, others].mean(0)
            named[j] = 1.0 - subset_mean_product(1.0 - p[:, others], n).mean()
            missed[j] = self._missed(j, rows, others, n, t)
        fpir = float(named.mean())
        has_mated = ~np.isnan(missed)
        fnir = float(missed[has_mated].mean())
        f_pop = float(pair_rate.sum() / (k * (k - 1)))
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=BOOT).astype(np.float64)
        off = weights.sum(1) ** 2 - (weights ** 2).sum(1)  # pairs of two different people drawn
        weights, off = weights[off > 0], off[off > 0]
        f_boot = np.einsum("bj,jg,bg->b", weights, pair_rate, weights) / off
        w_m = weights[:, has_mated]
        fnir_boot = (w_m @ missed[has_mated]) / np.maximum(w_m.sum(1), 1)
        return {"fpir": fpir, "fpir_ci95": [fpir * float(q) / f_pop if f_pop > 0 else 0.0
                                            for q in np.quantile(f_boot, [0.025, 0.975])],
                "fnir": fnir, "fnir_ci95": [float(q) for q in np.quantile(fnir_boot, [0.025, 0.975])],
                "pair_rate_pool": f_pop, "fpir_formula_pool": float(-np.expm1(n * np.log1p(-f_pop))),
                "stranger_people": k, "mated_people": int(has_mated.sum())}

    def _missed(self, i: int, rows: np.ndarray, others: np.ndarray, n: int, t: float) -> float:
        """Mean over (probe s, enroll photo e != s) of person i of P(not found) in a gallery
        of i and n - 1 others."""
        e_rows = self.enroll[self.enroll_start[i]:self.enroll_start[i] + self.enroll_count[i]]
        cols = np.arange(self.enroll_start[i], self.enroll_start[i] + self.enroll_count[i])
        s_idx, e_idx = np.meshgrid(np.arange(len(rows)), np.arange(len(cols)), indexing="ij")
        keep = rows[s_idx] != e_rows[e_idx]
        s_idx, e_idx = s_idx[keep], e_idx[keep]
        if len(s_idx) == 0:
            return np.nan
        d0 = self.dist[rows[s_idx], cols[e_idx]]
        found = np.zeros(len(d0))
        near = d0 <= t
        if near.any():
            s_near, d_near = rows[s_idx[near]], d0[near]
            nearer = self.share_within(self.dist[s_near] < d_near[:, None])[:, others]
            found[near] = subset_mean_product(1.0 - nearer, n - 1)
        return float(1.0 - found.mean())
