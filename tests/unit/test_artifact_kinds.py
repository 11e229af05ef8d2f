"""metadata["embedder"]["kind"] picks the embedder; a wrong kind or base file fails at start."""

from __future__ import annotations

import json

import pytest

from app.inference.artifacts import ArtifactError, load_artifact
from app.inference.registry import build_embedder

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
    from app.inference.backbones.sface.weights import onnx_sha256

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


def test_dlib_artifact_for_another_dat_file_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        build_embedder(_artifact(tmp_path, {"kind": "dlib-keras", "base_sha256": "0" * 64}))


def test_fusion_artifact_builds_its_parts_with_flip(tmp_path):
    """The shipped default's kind: SFace and dlib parts on their own templates, each flip-averaged."""
    from app.inference.flip import FlipAveraged
    from app.inference.fusion import FusionEmbedder
    from model.faces.fusion import embedder_block

    spec, template, dim = embedder_block([("sface", 0.3), ("dlib", 0.7)], flip=True)
    meta = {"model_version": "fusion-v1", "embedding_dim": dim, "metric": "cosine_distance",
            "embedder": spec, "threshold": 0.5, "alignment": template.to_metadata()}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    embedder = build_embedder(load_artifact(tmp_path))
    assert isinstance(embedder, FusionEmbedder)
    assert (embedder.embedding_dim, embedder.input_size) == (256, 184)  # 128 + 128: no padding
    assert load_artifact(tmp_path).embedding_dim == 256  # what the database stores
    assert [p.weight for p in embedder.parts] == [0.3, 0.7]
    assert all(isinstance(p.embedder, FlipAveraged) for p in embedder.parts)
    assert [p.embedder.input_size for p in embedder.parts] == [112, 150]


def test_fusion_artifact_with_bad_parts_is_refused(tmp_path):
    from model.faces.fusion import embedder_block

    spec, template, dim = embedder_block([("sface", 0.3), ("dlib", 0.7)], flip=False)
    spec["parts"][1]["weight"] = 0.9  # weights no longer sum to 1
    meta = {"model_version": "fusion-v1", "embedding_dim": dim, "metric": "cosine_distance",
            "embedder": spec, "threshold": 0.5, "alignment": template.to_metadata()}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="sum to 1"):
        build_embedder(load_artifact(tmp_path))
    del spec["parts"][0]["alignment"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="fusion part is malformed"):
        build_embedder(load_artifact(tmp_path))
