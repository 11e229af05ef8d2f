"""bench/_fpir_real.py: the exact FPIR/FNIR expectations the identify benchmark reports,
against enumerating every gallery and every choice of enroll photo of a small pool."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _fpir_real import Pool, subset_mean_product  # noqa: E402


def test_subset_mean_product_matches_enumeration():
    rng = np.random.default_rng(3)
    q = rng.random((4, 8))
    for n in range(9):
        brute = [np.mean([np.prod(row[list(s)]) for s in itertools.combinations(range(8), n)]) for row in q]
        assert subset_mean_product(q, n) == pytest.approx(brute, abs=1e-12)


def test_subset_mean_product_of_a_constant_is_its_power():
    assert subset_mean_product(np.full((1, 300), 0.999), 200)[0] == pytest.approx(0.999 ** 200, rel=1e-12)


def _small_pool(seed: int) -> Pool:
    """5 people, 2-3 photos each, some not enrollable; clustered so that thresholds bite."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(5), [3, 2, 3, 2, 3])
    centres = rng.normal(size=(5, 6))
    emb = centres[person] + 0.9 * rng.normal(size=(len(person), 6))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    enroll = np.array([0, 1, 3, 4, 5, 7, 8, 10, 12])  # photos 2, 6, 9, 11 cannot be enrolled
    return Pool("toy", emb.astype(np.float32), person, enroll, seen_by_embedder=False)


def _enumerate(pool: Pool, n: int, t: float) -> tuple[float, float]:
    """FPIR and FNIR by brute force: every gallery of n people equally likely, and within it
    every choice of one enroll photo per person equally likely."""
    dist = 1.0 - pool.emb @ pool.emb.T
    enroll_of = [[int(e) for e in pool.enroll if pool.person[e] == p] for p in range(pool.k)]
    named = {p: [] for p in range(pool.k)}
    missed = {p: [] for p in range(pool.k)}
    for gallery in itertools.combinations(range(pool.k), n):
        per_gallery_named = {p: [] for p in range(pool.k)}
        per_gallery_missed = {p: [] for p in range(pool.k)}
        for photos in itertools.product(*(enroll_of[g] for g in gallery)):
            for s in range(len(pool.person)):
                d = dist[s, list(photos)]
                j = int(pool.person[s])
                if j not in gallery:
                    per_gallery_named[j].append(d.min() <= t)
                else:
                    e = photos[gallery.index(j)]
                    if e != s:
                        found = dist[s, e] <= t and all(dist[s, o] >= dist[s, e] for o in photos if o != e)
                        per_gallery_missed[j].append(not found)
        for p in range(pool.k):
            if per_gallery_named[p]:
                named[p].append(np.mean(per_gallery_named[p]))
            if per_gallery_missed[p]:
                missed[p].append(np.mean(per_gallery_missed[p]))
    fpir = np.mean([np.mean(v) for v in named.values() if v])
    fnir = np.mean([np.mean(v) for v in missed.values() if v])
    return float(fpir), float(fnir)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_pool_measure_equals_enumeration(seed, n):
    pool = _small_pool(seed)
    d = 1.0 - pool.emb @ pool.emb.T
    t = float(np.quantile(d[pool.person[:, None] != pool.person[None, :]], 0.2))  # names some strangers
    m = pool.measure(n, t)
    fpir, fnir = _enumerate(pool, n, t)
    assert 0 < fpir < 1
    assert m["fpir"] == pytest.approx(fpir, abs=1e-9)
    assert m["fnir"] == pytest.approx(fnir, abs=1e-9)
    assert m["fpir_ci95"][0] <= m["fpir"] <= m["fpir_ci95"][1]
