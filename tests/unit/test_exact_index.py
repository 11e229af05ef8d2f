import numpy as np

from app.storage.search import ExactIndex


def unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_index_agrees_with_brute_force_through_growth_deletes_and_replaces():
    rng = np.random.default_rng(0)
    index = ExactIndex(8)
    truth: dict[str, np.ndarray] = {}
    for i, v in enumerate(unit(rng, 200)):  # crosses the buffer's growth several times
        index.upsert(f"p{i}", None, v)
        truth[f"p{i}"] = v
    for i in range(0, 200, 3):
        index.remove(f"p{i}")
        del truth[f"p{i}"]
    for i, v in zip(range(1, 200, 7), unit(rng, 200)):
        if f"p{i}" in truth:
            index.upsert(f"p{i}", "renamed", v)
            truth[f"p{i}"] = v
    index.remove("never-enrolled")
    assert len(index) == len(truth)
    ids = list(truth)
    matrix = np.stack([truth[p] for p in ids])
    for q in unit(rng, 20):
        got = index.search(q, 5)
        want = np.argsort(1 - matrix @ q, kind="stable")[:5]
        assert [c.person_id for c in got] == [ids[j] for j in want]
        assert np.allclose([c.distance for c in got], (1 - matrix @ q)[want], atol=1e-6)


def test_bulk_load_then_append():
    rng = np.random.default_rng(1)
    index = ExactIndex(8)
    rows = unit(rng, 3)
    index.bulk_load(["a", "b", "c"], [None, None, None], rows)
    index.upsert("d", None, rows[0] * -1)
    assert [c.person_id for c in index.search(rows[0], 4)][0] == "a"
    assert index.search(rows[0], 4)[-1].person_id == "d"
    assert len(index) == 4
