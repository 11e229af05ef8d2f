"""The trainer's all-pairs threshold statistics: FAR thresholds chosen on validation, TAR at
FAR with bootstrap intervals per split, and an impostor tail the service can load."""

import json

import numpy as np
import pytest

from app.inference.artifacts import load_artifact
from app.domain.open_set import ImpostorTail
from model.faces.threshold import all_pairs_statistics, apply_all_pairs


def faces_like(n_ids=40, per_id=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, 64))
    x = np.repeat(centres, per_id, 0) + 1.3 * rng.standard_normal((n_ids * per_id, 64))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(n_ids), per_id)


def test_all_pairs_statistics_feed_the_metadata_and_the_service(tmp_path, model_artifact_meta):
    emb, ids = faces_like()
    usable = np.ones(len(ids), bool)
    usable[3] = False  # an undetected photo takes no part
    split = {"train": np.arange(0, 10), "val": np.arange(10, 25), "test": np.arange(25, 40)}
    stats = all_pairs_statistics(emb, ids, usable, split, n_boot=30)

    val = stats["all_pairs"]["val"]
    assert val["identities"] == 15 and val["genuine_pairs"] == 15 * 45
    assert val["impostor_pairs"] == 150 * 149 // 2 - 15 * 45
    t3 = stats["thresholds"]["threshold_far_1e-3"]
    assert val["threshold_far_1e-3"]["far"] <= 1e-3  # chosen on validation
    assert stats["thresholds"]["threshold_far_1e-4"] <= t3
    for split_name in ("val", "test"):
        tar = stats["all_pairs"][split_name]["tar_at_far"]
        assert set(tar) == {"0.001", "0.0001"}
        lo, hi = tar["0.001"]["ci95"]
        assert lo <= tar["0.001"]["tar"] <= hi
    tail = ImpostorTail.from_dict(stats["impostor_tail"])
    assert tail.pairs == val["impostor_pairs"]
    # the shipped quantiles are a 99 % lower bound over resampled identities: stricter than the
    # plain FAR 1e-3 threshold of the same pairs, not wildly so
    assert t3 - 0.1 < tail.quantile(1e-3) <= t3

    meta = apply_all_pairs(dict(model_artifact_meta), stats)
    assert meta["threshold_far_1e-3"] == t3 and meta["metrics"]["val"]["all_pairs"] == val
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(meta))
    assert load_artifact(folder).impostor_tail.rates == tail.rates


@pytest.fixture
def model_artifact_meta():
    from app.core.config import Settings

    return json.loads((Settings().model_dir() / "metadata.json").read_text())
