"""Start-up and model-version rules: schema must be migrated, readiness waits for the
model, and embeddings of another model version are never compared silently."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.core.config import Settings
from app.core.db import make_engine
from app.main import create_app
from app.startup import StartupError
from tests.conftest import FakeDetector, FakeEmbedder, make_api, yale_bytes


class OtherModel(FakeEmbedder):
    model_version = "fake-v2"


def test_unmigrated_database_is_refused_at_start(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"),
                     embedder=FakeEmbedder(), detector=FakeDetector())
    with pytest.raises(StartupError, match="python -m app migrate"):
        with TestClient(app):
            pass


def test_other_model_version_is_a_clear_409_and_is_not_searched(database_url):
    with make_api(database_url, FakeEmbedder(), FakeDetector()) as api:
        assert api.enroll("old", yale_bytes("subject01.normal")).status_code == 201
    with make_api(database_url, OtherModel(), FakeDetector()) as api:
        r = api.verify("old", yale_bytes("subject01.normal"))
        assert r.status_code == 409 and r.json()["code"] == "model_version_mismatch"
        assert "re-enroll" in r.json()["detail"]
        assert api.identify(yale_bytes("subject01.normal")).json()["candidates"] == []
        # re-enrolling with replace=true moves the person to the running model
        assert api.enroll("old", yale_bytes("subject01.normal"), replace=True).status_code == 201
        assert api.verify("old", yale_bytes("subject01.normal")).json()["match"] is True


def test_threshold_override_is_reported(database_url):
    with make_api(database_url, FakeEmbedder(), FakeDetector(), threshold=0.123) as api:
        info = api.http.get("/model").json()
        assert info["threshold"] == 0.123 and info["threshold_origin"].startswith("settings")
        api.enroll("p", yale_bytes("subject02.normal"))
        assert api.verify("p", yale_bytes("subject02.normal")).json()["threshold"] == 0.123


def test_model_info_reports_threshold_provenance(database_url, model_artifact):
    """GET /model passes on what the artefact records (the fake embedder makes no accuracy
    claim here: the accuracy figures are the artefact's, checked against its metadata) and
    names the criterion of the threshold in use, which by default is not max accuracy."""
    meta = model_artifact.metadata
    with make_api(database_url, FakeEmbedder(), FakeDetector()) as api:
        info = api.http.get("/model").json()
    assert info["threshold"] == meta["threshold_far_1e-3"] < meta["threshold"]
    assert info["threshold_origin"] == "model artefact, policy far_1e-3"
    assert info["threshold_criterion"] == "false-accept rate <= 1e-3 on validation pairs"
    assert info["provenance"]["test_metrics"] == meta["metrics"]["test"]
    assert info["provenance"]["threshold_far_1e-3"] == meta["threshold_far_1e-3"]
    assert info["provenance"]["threshold_max_accuracy"] == meta["threshold"]


def test_max_accuracy_policy_uses_that_threshold(database_url, model_artifact):
    with make_api(database_url, FakeEmbedder(), FakeDetector(), threshold_policy="max_accuracy") as api:
        assert api.http.get("/model").json()["threshold_criterion"].startswith("maximum accuracy")
        api.enroll("p", yale_bytes("subject02.normal"))
        assert api.verify("p", yale_bytes("subject02.normal")).json()["threshold"] == model_artifact.threshold


class SmallerModel(FakeEmbedder):
    model_version, embedding_dim = "fake-128", 128


def test_embedding_size_mismatch_stops_the_start(database_url):
    """A model whose embeddings do not fit the stored ones must not start (it would fail on
    every enroll and compare nothing), and the message says what to do."""
    with make_api(database_url, FakeEmbedder(), FakeDetector()) as api:
        assert api.enroll("p", yale_bytes("subject02.normal")).status_code == 201
    app = create_app(Settings(database_url=database_url), embedder=SmallerModel(), detector=FakeDetector())
    with pytest.raises(StartupError) as caught:
        with TestClient(app):
            pass
    message = str(caught.value)
    assert "stores 256-value embeddings" in message and "makes 128-value ones" in message
    assert "1 with 'fake-v1'" in message  # whose rows they are
    # what to do: the model the rows were made with, or a new database migrated for this model
    assert "FACEAPI_MODEL=fusion-sface-dlib-flip-v1" in message and "python -m app migrate" in message


def test_a_model_of_another_width_than_the_columns_stops_the_start(tmp_path):
    """On an empty database too: the columns hold the width of the model they were migrated for
    (256, the default), so a 128-value model would fail on every enroll; the start refuses it."""
    from tests.conftest import migrated_sqlite_url

    app = create_app(Settings(database_url=migrated_sqlite_url(tmp_path)), embedder=SmallerModel(),
                     detector=FakeDetector())
    with pytest.raises(StartupError, match="stores 256-value embeddings .*persons: no persons yet.* "
                                           "makes 128-value ones"):
        with TestClient(app):
            pass


def test_a_database_migrated_for_a_narrower_model_serves_it(tmp_path):
    """The columns follow the model named at migration: migrated for a 128-value model, the
    database serves it, and stores its embeddings 128 wide."""
    from app.core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    upgrade(url, embedding_width=(128, SmallerModel.model_version))
    with make_api(url, SmallerModel(), FakeDetector()) as api:
        assert api.enroll("p", yale_bytes("subject02.normal")).status_code == 201
        assert api.verify("p", yale_bytes("subject02.normal")).json()["match"]
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            assert c.scalar(text("SELECT length(embedding) FROM persons")) == 128 * 4
            assert c.scalar(text("SELECT length(embedding) FROM faces")) == 128 * 4
    finally:
        engine.dispose()
