"""metadata["embedder"]["kind"] picks the embedder; a wrong kind or base file fails at start."""

from __future__ import annotations

import json

import pytest

from app.inference.artifacts import ArtifactError, build_embedder, load_artifact

ARCFACE_112 = {"size": 112, "template": [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74],
                                         [41.55, 92.37], [70.73, 92.20]]}


def _artifact(tmp_path, embedder: dict):
    meta = {"model_version": "x-v1", "embedding_dim": 128, "metric": "cosine_distance",
            "embedder": embedder, "threshold": 0.5, "alignment": ARCFACE_112}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    return load_artifact(tmp_path)


def test_unknown_embedder_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="unknown embedder kind 'onnxruntime'"):
        build_embedder(_artifact(tmp_path, {"kind": "onnxruntime"}))


def test_sface_artifact_for_another_onnx_file_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        build_embedder(_artifact(tmp_path, {"kind": "sface-keras", "base_sha256": "0" * 64}))


def test_sface_artifact_builds_the_keras_port(tmp_path):
    from app.inference.sface_onnx import onnx_sha256

    embedder = build_embedder(_artifact(tmp_path, {"kind": "sface-keras", "base_sha256": onnx_sha256()}))
    assert (embedder.model_version, embedder.embedding_dim, embedder.input_size) == ("x-v1", 128, 112)


def test_an_artifact_without_an_alignment_template_is_refused_at_load(tmp_path):
    meta = {"model_version": "x-v1", "embedding_dim": 128, "metric": "cosine_distance",
            "embedder": {"kind": "sface-keras"}, "threshold": 0.5}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="lacks alignment"):
        load_artifact(tmp_path)
    meta["alignment"] = {"size": 112, "template": [[1, 2]] * 4}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="alignment is malformed"):
        load_artifact(tmp_path)
