"""Export -> reload gives the embeddings of the in-memory model: head.keras through the service's
path (frozen graph to base_output, then the head) and the SavedModel's serving signatures."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.faces import export
from model.faces import heads as face_heads
from model.faces.faceset import yale_faces

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    yale = yale_faces()  # real aligned faces (cached under var/cache)
    return yale.faces[np.flatnonzero(yale.usable)[::20]]


def _cosines(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_projection_head_reloads_identically(faces, tmp_path):
    head = face_heads.build_embedding("Bottleneck", 128, seed=3)  # random orthogonal 512 -> 128
    service = export.ServiceEmbedder(face_heads.base_output_tensor("Bottleneck"), head)
    expected = service.embed(faces)
    head.save(tmp_path / "head.keras")
    reloaded = keras.saving.load_model(tmp_path / "head.keras")
    got = export.ServiceEmbedder("embeddings:0", reloaded).embed(faces)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (len(faces), 128)


def test_last_block_head_saved_model_matches_service_path(faces, tmp_path):
    head = face_heads.build_embedding("Block8", 128, seed=1)
    base_output = face_heads.base_output_tensor("Block8")
    expected = export.ServiceEmbedder(base_output, head).embed(faces)

    head.save(tmp_path / "head.keras")
    reloaded = keras.saving.load_model(tmp_path / "head.keras")
    np.testing.assert_allclose(export.ServiceEmbedder(base_output, reloaded).embed(faces), expected, atol=1e-6)

    model = export.serving_model(reloaded, "Block8")
    in_memory = np.asarray(model.predict(faces, verbose=0))
    assert (_cosines(in_memory, expected) > 0.9999).all()

    import tensorflow as tf

    export.export_saved_model(model, tmp_path / "saved_model")
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    as_float = loaded.signatures["serving_default"](images=tf.constant(faces, tf.float32))["embeddings"].numpy()
    as_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(faces))["embeddings"].numpy()
    np.testing.assert_allclose(as_float, in_memory, atol=1e-5)
    np.testing.assert_allclose(as_uint8, in_memory, atol=1e-5)
    # any batch size, including one face
    one = loaded.signatures["serving_default"](images=tf.constant(faces[:1], tf.float32))["embeddings"].numpy()
    np.testing.assert_allclose(one, in_memory[:1], atol=1e-5)
