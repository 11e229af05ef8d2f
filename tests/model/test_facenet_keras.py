"""The Keras 3 port of FaceNet computes what the frozen graph computes, on real aligned faces."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.backbones.facenet.graph import EMBEDDING_DIM, INPUT_SIZE, FaceNetGraphEmbedder, load_graph_function
from app.inference.layers import prewhiten
from model.common.paths import data_dir
from model.faces import facenet_keras as fk
from tests.conftest import require_data

pytestmark = pytest.mark.slow


def _aligned(paths) -> np.ndarray:
    from app.vision.align import align
    from app.vision.decode import decode_image
    from app.vision.detect import YuNetDetector
    from model.faces.data import default_template

    detector, template = YuNetDetector(), default_template()
    faces = []
    for p in paths:
        rgb = decode_image(p.read_bytes())
        found = detector.detect(rgb)
        assert found, f"no face in {p.name}"
        faces.append(align(rgb, found[0], template))
    return np.stack(faces)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    root = require_data(data_dir())
    yale = [root / "yalefaces" / f for f in ("subject02.normal.png", "subject07.glasses.png", "subject11.leftlight.png")]
    celeba = sorted((root / "celeba_subset" / "images").glob("*.jpg"))[:3]
    return _aligned(yale + celeba)


@pytest.fixture(scope="module")
def constants():
    return fk.graph_constants()


def test_port_matches_frozen_graph_on_real_faces(faces, constants):
    import tensorflow as tf

    model = fk.build_facenet()
    n_params = fk.load_graph_weights(model, constants)
    assert n_params == model.count_params() == 23_468_848

    x = np.asarray(prewhiten(faces))
    expected = load_graph_function()(tf.constant(x)).numpy()
    got = np.asarray(model.predict(x, verbose=0))
    assert np.abs(got - expected).max() < 1e-4
    assert (np.sum(got * expected, axis=1) > 0.9999).all()
    # different faces really are different: the test is not passing on a constant output
    assert np.sum(expected[0] * expected[-1]) < 0.9


def test_prewhiten_layer_takes_raw_uint8_faces(faces, constants):
    model = fk.pretrained_facenet(prewhiten=True, constants=constants)
    expected = FaceNetGraphEmbedder("base", EMBEDDING_DIM, INPUT_SIZE).embed(faces)
    got = np.asarray(model.predict(faces, verbose=0))
    assert (np.sum(got * expected, axis=1) > 0.9999).all()


def test_cut_model_continues_from_graph_features(faces, constants):
    """The last stages alone, fed with the graph's block8_5 output, give the full embedding."""
    tensor = fk.stage_input_tensor("Block8")
    assert tensor == "InceptionResnetV1/Repeat_2/block8_5/Relu:0"
    feats, emb = load_graph_function([tensor, "embeddings:0"])(prewhiten(faces))
    tail = fk.pretrained_facenet("Block8", constants=constants)
    got = np.asarray(tail.predict(feats.numpy(), verbose=0))
    assert np.abs(got - emb.numpy()).max() < 1e-4


def test_set_trainable_from_freezes_earlier_stages_and_the_batch_norm():
    model = fk.build_facenet("Mixed_7a")
    fk.set_trainable_from(model, "Block8")
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable and all(name.startswith(("Block8__", "Bottleneck")) for name in trainable)
    assert "Bottleneck__BatchNorm" not in trainable
    assert not model.get_layer("Repeat_2__block8_5__Conv2d_1x1").trainable
