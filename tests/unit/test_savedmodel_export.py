"""The default artefact's whole embedder as one SavedModel, called as TensorFlow Serving calls it
(load the SavedModel, call its serving_default signature with `faces`), gives the in-process
embeddings on real aligned faces (cosine >= 0.9999)."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.savedmodel_export import export_savedmodel, pil_affine_to_tf
from tests.unit.test_litert_runtime import aligned_faces  # noqa: F401  (fixture)


def test_pil_affine_convention_matches_pillow():
    """The transform given to TensorFlow samples where Pillow's AFFINE samples."""
    import tensorflow as tf
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    m = np.array([[0.83, -0.12, 5.3], [0.12, 0.83, 3.1]])
    want = np.asarray(Image.fromarray(img).transform((24, 24), Image.AFFINE, data=tuple(m.ravel()),
                                                     resample=Image.BILINEAR)).astype(np.float32)
    got = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(img[None], tf.float32), transforms=tf.constant([pil_affine_to_tf(m)], tf.float32),
        output_shape=tf.constant([24, 24]), fill_value=tf.constant(0.0), interpolation="BILINEAR",
        fill_mode="CONSTANT").numpy()[0]
    diff = np.abs(np.floor(got + 1e-3) - want)  # Pillow truncates to uint8
    assert diff.mean() < 0.01 and diff.max() <= 1  # a half-pixel shift gives tens of levels


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model_artifact):
    return export_savedmodel(model_artifact, tmp_path_factory.mktemp("tfserving") / "faceapi" / "1")


@pytest.mark.slow
def test_savedmodel_serving_default_matches_the_in_process_embedder(exported, model_artifact, real_embedder,
                                                                   aligned_faces):  # noqa: F811
    import tensorflow as tf

    path = exported
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert list(served.structured_input_signature[1]) == ["faces"]
    got = served(faces=tf.constant(aligned_faces.astype(np.float32)))["embeddings"].numpy()
    want = real_embedder.embed(aligned_faces)
    assert got.shape == want.shape == (len(aligned_faces), model_artifact.embedding_dim)
    cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cosine.min() >= 0.9999, cosine


@pytest.mark.slow
def test_the_remote_runtime_serves_the_default_model(exported, model_artifact, real_embedder,
                                                     aligned_faces):  # noqa: F811
    """RemoteEmbedder (FACEAPI_RUNTIME=remote) against the SavedModel behind TensorFlow Serving's
    REST predict format (tests/integration/test_tfserving_client.py: FakeTFServing)."""
    from app.inference.remote import RemoteEmbedder
    from tests.integration.test_tfserving_client import FakeTFServing

    with FakeTFServing(exported) as server:
        remote = RemoteEmbedder(server.url, model_artifact)
        got = remote.embed(aligned_faces)
    want = real_embedder.embed(aligned_faces)
    assert remote.input_size == model_artifact.alignment.size
    assert (np.sum(got * want, axis=1) >= 0.9999).all()
