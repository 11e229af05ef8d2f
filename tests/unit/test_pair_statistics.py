"""All pairs of a validation set and the identity bootstrap of TAR at FAR."""

import numpy as np
import pytest

from model.common import metrics


def clustered_embeddings(n_ids: int, per_id: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, 64))
    x = np.repeat(centres, per_id, 0) + spread * rng.standard_normal((n_ids * per_id, 64))
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(100, 100 + n_ids), per_id)


def test_all_pairs_counts_and_distances():
    e, ids = clustered_embeddings(5, 4, 0.3)
    p = metrics.all_pairs(e, ids)
    assert len(p.distances) == 20 * 19 // 2
    assert int(p.same.sum()) == 5 * (4 * 3 // 2)
    assert np.array_equal(p.same, p.id_a == p.id_b)
    assert p.distances[0] == pytest.approx(1 - float(e[0] @ e[1]), abs=1e-6)
    assert len(p.impostor) == 190 - 30


def test_bootstrap_point_estimate_is_the_plain_tar_and_the_interval_contains_it():
    e, ids = clustered_embeddings(40, 8, 0.9, seed=1)
    p = metrics.all_pairs(e, ids)
    out = metrics.tar_at_far_bootstrap(p, fars=(1e-2, 1e-3), n_boot=100)
    for far in (1e-2, 1e-3):
        got = out[f"{far:g}"]
        assert got["tar"] == pytest.approx(metrics.tar_at_far(p.distances, p.same, far), abs=1e-6)
        lo, hi = got["ci95"]
        assert lo <= got["tar"] <= hi and hi - lo > 0
    assert out["0.001"]["tar"] <= out["0.01"]["tar"]


def test_bootstrap_interval_narrows_with_more_identities():
    widths = []
    for n_ids in (15, 120):
        e, ids = clustered_embeddings(n_ids, 6, 1.5, seed=2)
        ci = metrics.tar_at_far_bootstrap(metrics.all_pairs(e, ids), fars=(1e-2,), n_boot=100)["0.01"]["ci95"]
        widths.append(ci[1] - ci[0])
    assert widths[1] < widths[0]
