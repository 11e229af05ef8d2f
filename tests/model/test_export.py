"""Export -> the service: the head.keras and metadata.json that the export writes, loaded by the
service's own code (app.inference.registry.build_embedder), give the in-memory head's
embeddings, and the SavedModel's serving signatures give the service's embeddings."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from app.inference.artifacts import load_artifact
from app.inference.registry import build_embedder
from model.common import paths
from model.faces import export
from model.faces import heads as face_heads
from model.faces.artifact import write_metadata
from model.faces.data import default_template
from model.faces.faceset import yale_faces
from tests.conftest import require_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    require_data(paths.data_dir() / "yalefaces")
    yale = yale_faces()  # real aligned faces (cached under var/cache)
    return yale.faces[np.flatnonzero(yale.usable)[::20]]


def _service(folder, head, base_stage: str):
    """Write an artefact the way `python -m model faces export` does; load it the way the service does."""
    spec = export.write_head(folder, head, export.base_output_of(base_stage, head))
    write_metadata(folder, {"model_version": "test-v1", "embedding_dim": int(head.output_shape[-1]),
                            "metric": "cosine_distance", "embedder": spec, "threshold": 0.5,
                            "alignment": default_template().to_metadata()})
    return build_embedder(load_artifact(folder))


def _cosines(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_projection_head_reloads_identically(faces, tmp_path):
    head = face_heads.build_embedding("Bottleneck", 128, seed=3)  # random orthogonal 512 -> 128
    in_memory = export.service_embedder("test-v1", "embeddings:0", head, 128).embed(faces)
    got = _service(tmp_path, head, "Bottleneck").embed(faces)
    np.testing.assert_array_equal(got, in_memory)
    assert got.shape == (len(faces), 128)
    assert _cosines(got[:1], got[-1:])[0] < 0.99  # different faces, different embeddings


def test_last_block_head_saved_model_matches_service_path(faces, tmp_path):
    head = face_heads.build_embedding("Block8", 128, seed=1)
    service = _service(tmp_path / "artifact", head, "Block8")
    expected = service.embed(faces)  # what the service computes from the exported artefact

    reloaded = keras.saving.load_model(tmp_path / "artifact" / "head.keras")
    model = export.serving_model(reloaded, "Block8")
    in_memory = np.asarray(model.predict(faces, verbose=0))
    assert (_cosines(in_memory, expected) > 0.9999).all()

    import tensorflow as tf

    export.export_saved_model(model, tmp_path / "saved_model")
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    as_float = loaded.signatures["serving_default"](images=tf.constant(faces, tf.float32))["embeddings"].numpy()
    as_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(faces))["embeddings"].numpy()
    assert (_cosines(as_float, expected) > 0.9999).all()
    np.testing.assert_allclose(as_float, in_memory, atol=1e-5)
    np.testing.assert_allclose(as_uint8, in_memory, atol=1e-5)
    # any batch size, including one face
    one = loaded.signatures["serving_default"](images=tf.constant(faces[:1], tf.float32))["embeddings"].numpy()
    np.testing.assert_allclose(one, in_memory[:1], atol=1e-5)
