"""GET /model reports held-out test metrics at the threshold the service actually uses
(provenance.test_metrics are those of the max-accuracy threshold)."""

from __future__ import annotations

import copy

from app.inference.artifacts import ModelArtifact
from tests.conftest import FakeDetector, FakeEmbedder, make_api, migrated_sqlite_url

AT_FAR = {"threshold": 0.52, "far": 0.0011, "tar": 0.7}


def with_all_pairs(artifact: ModelArtifact) -> ModelArtifact:
    meta = copy.deepcopy(artifact.metadata)
    meta["metrics"]["test"]["all_pairs"] = {"threshold_far_1e-3": AT_FAR}
    return ModelArtifact.from_json(artifact.path, meta)


def test_metrics_at_each_policy(model_artifact):
    measured = with_all_pairs(model_artifact)
    assert measured.test_metrics_at("far_1e-3") == {"measured_on": "all pairs of the test identities", **AT_FAR}
    at_max = measured.test_metrics_at("max_accuracy")
    assert at_max["threshold"] == measured.threshold_for("max_accuracy") and at_max["measured_on"] == "balanced test pairs"
    bare = copy.deepcopy(model_artifact.metadata)
    bare["metrics"]["test"].pop("all_pairs", None)
    assert ModelArtifact.from_json(model_artifact.path, bare).test_metrics_at("far_1e-3") is None


def test_model_info_shows_the_metrics_of_the_threshold_in_use(tmp_path, model_artifact):
    url = migrated_sqlite_url(tmp_path)
    with make_api(url, FakeEmbedder(), FakeDetector()) as api:
        info = api.http.get("/model").json()
        assert info["test_metrics_at_threshold"] == model_artifact.test_metrics_at("far_1e-3")
    with make_api(url, FakeEmbedder(), FakeDetector(), threshold_policy="max_accuracy") as api:
        info = api.http.get("/model").json()
        assert info["test_metrics_at_threshold"]["threshold"] == info["threshold"]
    with make_api(url, FakeEmbedder(), FakeDetector(), threshold=0.5) as api:
        assert api.http.get("/model").json()["test_metrics_at_threshold"] is None
