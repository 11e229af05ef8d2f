"""SFace (OpenCV Zoo, 2021dec) rebuilt in Keras 3 from its ONNX weights.

Architecture (read off the ONNX graph; every conv has no bias, then batch norm eps 1e-3,
then PReLU with one slope per channel):
    input  [N, 112, 112, 3] RGB, 0..255, aligned on the ArcFace 5-point template
    -> (x - 127.5) / 128
    -> conv_1: 3x3 conv, 32
    -> conv_2 .. conv_14: depthwise 3x3 (stride 2 in blocks 3, 5, 7, 13) + pointwise 1x1,
       channels 64, 128, 128, 256, 256, 512 x 6, 1024, 1024    -> [N, 7, 7, 1024]
    -> bn1 (batch norm, eps 2e-5) -> dropout (inference: identity)
    -> flatten in ONNX's channel-first order -> pre_fc1: dense 128 -> fc1 (batch norm, eps 2e-5)
    output [N, 128], not normalised (OpenCV compares by cosine).

Three details make it match OpenCV: ONNX pads 3x3 convs by 1 on every side, also at
stride 2, where Keras' "same" pads only bottom/right, so padding is an explicit
ZeroPadding2D; the dense layer's weights index a [C, H, W] flattening, so the NHWC
features are permuted to channel-first before Flatten; and OpenCV feeds RGB (its
FaceRecognizerSF swaps BGR to RGB in blobFromImage).

Only built-in Keras layers are used, so the model runs under any Keras backend and saves
as .keras without custom objects.
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 112
EMBEDDING_DIM = 128
STRIDE_2_BLOCKS = (3, 5, 7, 13)
BLOCKS = range(2, 15)
CONV_EPS = 1e-3
HEAD_EPS = 2e-5


def _conv_unit(x, name: str, kernel: np.ndarray, depthwise: bool, stride: int, w: dict):
    """[pad 1] conv (no bias) -> batch norm -> PReLU, named after the ONNX nodes."""
    from keras import layers

    k = kernel.shape[-1]
    if k > 1:
        x = layers.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
    if depthwise:  # ONNX [C, 1, kh, kw] -> Keras [kh, kw, C, 1]
        conv = layers.DepthwiseConv2D(k, stride, use_bias=False, name=f"{name}_conv2d")
        x = conv(x)
        conv.set_weights([kernel.transpose(2, 3, 0, 1)])
    else:  # ONNX [out, in, kh, kw] -> Keras [kh, kw, in, out]
        conv = layers.Conv2D(kernel.shape[0], k, stride, use_bias=False, name=f"{name}_conv2d")
        x = conv(x)
        conv.set_weights([kernel.transpose(2, 3, 1, 0)])
    x = _batch_norm(x, f"{name}_batchnorm", w, CONV_EPS)
    prelu = layers.PReLU(shared_axes=[1, 2], name=f"{name}_relu")
    x = prelu(x)
    prelu.set_weights([w[f"{name}_relu_gamma"].reshape(1, 1, -1)])
    return x


def _batch_norm(x, name: str, w: dict, eps: float):
    from keras import layers

    bn = layers.BatchNormalization(epsilon=eps, name=name)
    x = bn(x)
    bn.set_weights([w[f"{name}_gamma"], w[f"{name}_beta"], w[f"{name}_moving_mean"], w[f"{name}_moving_var"]])
    return x


def build_sface(weights: dict[str, np.ndarray]):
    """The Keras model `sface`: [N,112,112,3] float RGB 0..255 -> [N,128] (see module doc).

    `weights` is `app.inference.sface_onnx.read_weights()`.
    """
    import keras
    from keras import layers

    def kernel(name: str) -> np.ndarray:
        return weights[f"{name}_conv2d_weight_reshaped"]

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="face_rgb")
    x = layers.Rescaling(1 / 128, offset=-127.5 / 128, name="normalize")(inputs)
    x = _conv_unit(x, "conv_1", kernel("conv_1"), False, 1, weights)
    for n in BLOCKS:
        stride = 2 if n in STRIDE_2_BLOCKS else 1
        x = _conv_unit(x, f"conv_{n}_dw", kernel(f"conv_{n}_dw"), True, stride, weights)
        x = _conv_unit(x, f"conv_{n}", kernel(f"conv_{n}"), False, 1, weights)
    x = _batch_norm(x, "bn1", weights, HEAD_EPS)
    x = layers.Permute((3, 1, 2), name="to_channels_first")(x)
    x = layers.Flatten(name="flatten")(x)
    fc_w = weights["pre_fc1_weight_dequantized"]
    dense = layers.Dense(fc_w.shape[0], name="pre_fc1")
    x = dense(x)
    dense.set_weights([fc_w.T, weights["pre_fc1_bias_dequantized"]])
    x = _batch_norm(x, "fc1", weights, HEAD_EPS)
    return keras.Model(inputs, x, name="sface")
