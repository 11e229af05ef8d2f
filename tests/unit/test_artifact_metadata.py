"""Every shipped metadata.json validates through the typed model the service reads and the
trainer writes (app/inference/metadata.py), and comes back out unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import ARTIFACTS_DIR
from app.inference.artifacts import ArtifactError, load_artifact
from app.inference.metadata import ArtifactMetadata

SHIPPED = sorted(ARTIFACTS_DIR.glob("*/metadata.json"))


def test_there_are_shipped_artefacts():
    assert len(SHIPPED) >= 9


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_a_shipped_metadata_file_validates_and_round_trips(path: Path):
    raw = json.loads(path.read_text())
    meta = ArtifactMetadata.model_validate(raw)
    assert meta.to_json() == raw  # no key dropped, renamed or added
    artifact = load_artifact(path.parent)
    assert artifact.model_version == path.parent.name == meta.model_version
    assert artifact.alignment.size == meta.alignment.size


@pytest.mark.parametrize("path", [p for p in SHIPPED if '"fusion"' in p.read_text()], ids=lambda p: p.parent.name)
def test_a_fusion_says_the_width_its_parts_make(path: Path):
    meta = ArtifactMetadata.model_validate_json(path.read_bytes())
    assert meta.embedding_dim == sum(p.embedding_dim for p in meta.embedder.parts) == 256


def _default() -> dict:
    return json.loads((ARTIFACTS_DIR / "fusion-sface-dlib-flip-v1" / "metadata.json").read_text())


def test_a_fusion_width_other_than_its_parts_sum_is_refused(tmp_path):
    meta = _default() | {"embedding_dim": 512}  # the zero-padded width the files once named
    with pytest.raises(ValidationError, match="parts make 256 values"):
        ArtifactMetadata.model_validate(meta)
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="parts make 256 values"):
        load_artifact(tmp_path)


def test_an_unknown_key_is_refused_at_any_depth(tmp_path):
    top = _default() | {"threshold_far_1e3": 0.5}  # misspelt: the file's key is threshold_far_1e-3
    with pytest.raises(ValidationError, match="threshold_far_1e3"):
        ArtifactMetadata.model_validate(top)
    nested = _default()
    nested["embedder"]["parts"][0]["input_sise"] = 112
    (tmp_path / "metadata.json").write_text(json.dumps(nested))
    with pytest.raises(ArtifactError, match="a fusion part is malformed: embedder.parts.0.input_sise"):
        load_artifact(tmp_path)


def test_a_malformed_template_calibration_is_refused(tmp_path):
    meta = _default()
    meta["template_calibration"]["distances"]["2"] = meta["template_calibration"]["distances"]["2"][::-1]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="template_calibration is malformed"):
        load_artifact(tmp_path)


def test_another_metric_is_refused(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps(_default() | {"metric": "euclidean"}))
    with pytest.raises(ArtifactError, match="metric 'euclidean' is not supported"):
        load_artifact(tmp_path)


def test_the_trainer_writes_through_the_model(tmp_path):
    from model.faces.artifact import write_metadata

    meta = _default()
    path = write_metadata(tmp_path / "v", meta)
    assert json.loads(path.read_text()) == meta
    meta["threshold"] = "near"
    with pytest.raises(ValidationError):
        write_metadata(tmp_path / "w", meta)
    assert not (tmp_path / "w" / "metadata.json").exists()
