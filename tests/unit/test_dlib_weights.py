"""dlib's face-recognition ResNet weights read from the face-recognition-models package's .dat
file with NumPy only: every record, the parameter count dlib reports, a network that runs."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.backbones.dlib import net as dlib_net, weights as dlib_dat


@pytest.fixture(scope="module")
def net() -> dlib_dat.DlibNet:
    return dlib_dat.read_network()


def test_dat_file_comes_from_the_installed_package():
    path = dlib_dat.dat_path()
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert path.stat().st_size == 22_466_066
    assert len(dlib_dat.dat_sha256()) == 64


def test_every_record_is_read_with_dlib_shapes(net):
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con_4") == 29 and kinds.count("affine_") == 29 and kinds.count("fc_2") == 1
    assert kinds.count("add_prev_") == 14 and kinds.count("avg_pool_2") == 5 and kinds.count("max_pool_2") == 1
    # 29 convs (all with bias), 29 affines (gamma, beta), fc 256 -> 128 without bias
    assert net.parameter_count() == 5_614_592
    assert net.input_size == 150
    np.testing.assert_allclose(net.input_mean, (122.782, 117.001, 104.298), atol=1e-3)
    stem = net.layers[0]
    assert stem.weights["filters"].shape == (32, 3, 7, 7)
    assert stem.config["stride"] == 2 and stem.config["padding"] == 0
    strides = [layer.config["stride"] for layer in net.layers if layer.kind == "con_4"]
    pads = [layer.config["padding"] for layer in net.layers if layer.kind == "con_4"]
    assert strides.count(2) == 5  # the stem and the first conv of the 4 down-blocks
    assert all(p == (0 if s == 2 else 1) for s, p in zip(strides[1:], pads[1:]))
    assert net.layers[-1].weights["weights"].shape == (256, 128)
    assert all(np.isfinite(v).all() for layer in net.layers for v in layer.weights.values())


def test_a_truncated_or_foreign_file_is_refused():
    data = dlib_dat.dat_path().read_bytes()
    with pytest.raises((ValueError, IndexError)):
        dlib_dat.parse(data[: len(data) // 2])
    with pytest.raises(ValueError, match="loss_metric"):
        dlib_dat.parse(b"\x01\x01\x01\x05hello" + data[20:])


def test_keras_port_runs_with_every_parameter_and_distinguishes_faces(net):
    model = dlib_net.build_dlib_resnet(net)
    assert model.output_shape == (None, dlib_net.EMBEDDING_DIM)
    # the affines are folded into the convs (29 x 2 x channels fewer weights); the fixed
    # zero-fill maps of the down-blocks add their identity kernels
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    affine = sum(layer.weights["gamma"].size * 2 for layer in net.layers if layer.kind == "affine_")
    assert trainable == net.parameter_count() - affine
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 150, 150, 3)).astype(np.float32)
    out = np.asarray(model.predict_on_batch(x))
    assert np.isfinite(out).all()
    assert np.abs(out[0] - out[1]).max() > 1e-3
    single = np.asarray(model.predict_on_batch(x[1:]))
    np.testing.assert_allclose(single[0], out[1], atol=1e-5)
