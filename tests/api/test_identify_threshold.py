"""API shape of the open-set identify threshold (fake embedder: no accuracy meaning here;
tests/api/test_open_set_real.py makes the accuracy claim on real photos)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from app.domain.open_set import ImpostorTail, identify_threshold
from tests.conftest import FakeDetector, FakeEmbedder, make_api, yale_bytes


def artefact_copy(tmp_path, model_artifact, tail: bool):
    folder = tmp_path / "artefact"
    shutil.copytree(model_artifact.path, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    meta.pop("impostor_tail", None)
    if tail:
        sample = np.random.default_rng(0).normal(0.9, 0.12, 200_000)
        meta["impostor_tail"] = {"split": "val", **ImpostorTail.from_distances(sample).to_dict()}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder, meta


def enroll_some(api, n: int, start: int = 1):
    for i in range(start, start + n):
        assert api.enroll(f"p{i}", yale_bytes(f"subject{i:02d}.normal")).status_code == 201


def test_identify_reports_how_it_decided_and_follows_the_gallery_size(database_url, tmp_path, model_artifact):
    folder, meta = artefact_copy(tmp_path, model_artifact, tail=True)
    tail = ImpostorTail.from_dict(meta["impostor_tail"])
    # a loose 1:1 threshold, so that the FPIR threshold is the stricter one even for tiny galleries
    with make_api(database_url, FakeEmbedder(), FakeDetector(), model=str(folder), threshold=1.5) as api:
        seen = []
        for n in (2, 5):
            enroll_some(api, n - len(seen), start=len(seen) + 1)
            seen = list(range(n))
            body = api.identify(yale_bytes("subject01.happy")).json()
            expected = identify_threshold(tail, 0.01, n, 1.5)
            assert body["gallery_size"] == n
            assert body["target_fpir"] == 0.01
            assert body["verify_threshold"] == 1.5
            assert body["threshold"] == expected.threshold < 1.5
            assert body["threshold_source"] == "fpir"
            best = body["candidates"][0]
            assert (body["match"] is not None) == (best["distance"] <= body["threshold"])
        assert api.http.delete("/persons/p1", headers=api.admin).status_code == 204
        body = api.identify(yale_bytes("subject02.happy")).json()
        assert body["gallery_size"] == 4
        info = api.http.get("/model").json()
        assert info["threshold"] == 1.5  # /verify's
        assert info["identify"]["gallery_size"] == 4
        assert info["identify"]["threshold"] == body["threshold"]
        assert info["provenance"]["impostor_tail"]["pairs"] == 200_000


def test_the_fpir_setting_is_used_and_identify_is_never_looser_than_verify(database_url, tmp_path,
                                                                           model_artifact):
    folder, _ = artefact_copy(tmp_path, model_artifact, tail=True)
    with make_api(database_url, FakeEmbedder(), FakeDetector(), model=str(folder), identify_fpir=0.2) as api:
        enroll_some(api, 3)
        body = api.identify(yale_bytes("subject03.happy")).json()
        assert body["target_fpir"] == 0.2
        # 3 people at FPIR 0.2 ask for a pair rate of 7 %: far looser than FAR 1e-3, so the 1:1 rules
        assert body["threshold_source"] == "verify"
        assert body["threshold"] == body["verify_threshold"] == model_artifact.metadata["threshold_far_1e-3"]


def test_an_artefact_without_a_tail_falls_back_to_the_1to1_threshold(database_url, tmp_path, model_artifact,
                                                                     caplog):
    folder, _ = artefact_copy(tmp_path, model_artifact, tail=False)
    with caplog.at_level("WARNING"), make_api(database_url, FakeEmbedder(), FakeDetector(),
                                              model=str(folder)) as api:
        enroll_some(api, 2)
        body = api.identify(yale_bytes("subject01.happy")).json()
        assert body["target_fpir"] is None and body["threshold_source"] == "verify"
        assert body["threshold"] == body["verify_threshold"]
        assert api.http.get("/model").json()["identify"]["target_fpir"] is None
    assert any("no impostor_tail" in r.getMessage() for r in caplog.records)


def test_a_malformed_tail_stops_the_start(tmp_path, model_artifact):
    from app.inference.artifacts import ArtifactError, load_artifact

    folder, meta = artefact_copy(tmp_path, model_artifact, tail=True)
    meta["impostor_tail"]["distances"] = meta["impostor_tail"]["distances"][::-1]
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="impostor_tail is malformed"):
        load_artifact(folder)
