import numpy as np
import pytest

from model.common.losses import semi_hard_triplet_loss


def brute_force(y, e, margin):
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    losses = []
    for a in range(len(y)):
        for p in range(len(y)):
            if a != p and y[a] == y[p]:
                negs = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
                semi = [x for x in negs if x > d[a, p]]
                losses.append(max(0.0, d[a, p] - (min(semi) if semi else max(negs)) + margin))
    return np.mean(losses)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semi_hard_triplet_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(16, 8)).astype("float32")
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    y = rng.integers(0, 4, 16)
    assert float(semi_hard_triplet_loss(y, e, 0.2)) == pytest.approx(brute_force(y, e, 0.2), abs=1e-5)
