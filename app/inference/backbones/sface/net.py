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
stride 2, where Keras' "same" pads only bottom/right, so padding at stride 2 is an explicit
ZeroPadding2D; the dense layer's weights index a [C, H, W] flattening, so the NHWC
features are permuted to channel-first before Flatten; and OpenCV feeds RGB (its
FaceRecognizerSF swaps BGR to RGB in blobFromImage).

Computed for speed, with the same result (cosine to the plain port >= 0.9999999): each conv's
batch norm is folded into the conv's kernel and a bias, and each PReLU is `ChannelPReLU`,
max(z, slope * z), which is exact for slopes <= 1. For the channels whose slope is > 1, the
conv computes -z instead (kernel and bias negated), so that max(-z, slope * -z) =
-PReLU(z); the next layer takes those channels with its input weights negated (bn1, for the
last unit). On 2 CPU cores this cut the network's time per face by 14-28 % (batch 16 to 1;
docs/models.md).

Built-in Keras layers and `ChannelPReLU` (app/inference/layers.py, registered for saving)
only, so the model runs under any Keras backend.
"""

from __future__ import annotations

import numpy as np

# Keras is imported inside the functions below, never at the top: importing it loads TensorFlow
# (seconds, ~1 GB), which importing the registry (app/inference/registry.py) must not.

INPUT_SIZE = 112
EMBEDDING_DIM = 128
STRIDE_2_BLOCKS = (3, 5, 7, 13)
BLOCKS = range(2, 15)
CONV_EPS = 1e-3
HEAD_EPS = 2e-5


def _conv_unit(x, name: str, kernel: np.ndarray, depthwise: bool, stride: int, w: dict,
               sign_in: np.ndarray):
    """ONNX's conv (no bias) -> batch norm -> PReLU, computed as one conv with the batch norm folded
    into its kernel and bias, then `ChannelPReLU` (max(z, slope * z)); layers named after the ONNX
    nodes. Channels whose slope is > 1 are carried negated (see module doc): `sign_in` says which
    of the input's channels are, and the unit returns its output with the signs it chose."""
    from keras import layers

    from app.inference.layers import ChannelPReLU

    scale, shift = _batch_norm_affine(w, f"{name}_batchnorm", CONV_EPS)
    slope = w[f"{name}_relu_gamma"].ravel()
    sign = np.where(slope > 1, -1.0, 1.0).astype(np.float32)
    scale, shift = scale * sign, shift * sign
    k = kernel.shape[-1]
    if stride == 2:  # ONNX pads 1 on every side; Keras' "same" would pad only bottom/right
        x = layers.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
    padding = "same" if stride == 1 else "valid"  # at stride 1, "same" is ONNX's symmetric pad
    if depthwise:  # ONNX [C, 1, kh, kw] -> Keras [kh, kw, C, 1]
        conv = layers.DepthwiseConv2D(k, stride, padding=padding, name=f"{name}_conv2d")
        folded = kernel.transpose(2, 3, 0, 1) * (sign_in * scale)[None, None, :, None]
    else:  # ONNX [out, in, kh, kw] -> Keras [kh, kw, in, out]
        conv = layers.Conv2D(kernel.shape[0], k, stride, padding=padding, name=f"{name}_conv2d")
        folded = kernel.transpose(2, 3, 1, 0) * sign_in[:, None] * scale
    x = conv(x)
    conv.set_weights([folded.astype(np.float32), shift.astype(np.float32)])
    prelu = ChannelPReLU(name=f"{name}_relu")
    x = prelu(x)
    prelu.set_weights([slope.astype(np.float32)])
    return x, sign


def _batch_norm_affine(w: dict, name: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A frozen batch norm as y = scale * x + shift."""
    scale = w[f"{name}_gamma"] / np.sqrt(w[f"{name}_moving_var"] + eps)
    return scale, w[f"{name}_beta"] - w[f"{name}_moving_mean"] * scale


def _batch_norm(x, name: str, w: dict, eps: float, sign: np.ndarray | None = None):
    """ONNX's batch norm; `sign` (+-1 per channel) says which input channels arrive negated."""
    from keras import layers

    gamma, mean = w[f"{name}_gamma"], w[f"{name}_moving_mean"]
    if sign is not None:  # gamma * (x - mean) = (gamma * s) * (s * x - s * mean) for s = +-1
        gamma, mean = gamma * sign, mean * sign
    bn = layers.BatchNormalization(epsilon=eps, name=name)
    x = bn(x)
    bn.set_weights([gamma, w[f"{name}_beta"], mean, w[f"{name}_moving_var"]])
    return x


def build_sface(weights: dict[str, np.ndarray]):
    """The Keras model `sface`: [N,112,112,3] float RGB 0..255 -> [N,128] (see module doc).

    `weights` is `app.inference.backbones.sface.weights.read_weights()`.
    """
    import keras
    from keras import layers

    def kernel(name: str) -> np.ndarray:
        return weights[f"{name}_conv2d_weight_reshaped"]

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="face_rgb")
    x = layers.Rescaling(1 / 128, offset=-127.5 / 128, name="normalize")(inputs)
    x, sign = _conv_unit(x, "conv_1", kernel("conv_1"), False, 1, weights, np.ones(3, np.float32))
    for n in BLOCKS:
        stride = 2 if n in STRIDE_2_BLOCKS else 1
        x, sign = _conv_unit(x, f"conv_{n}_dw", kernel(f"conv_{n}_dw"), True, stride, weights, sign)
        x, sign = _conv_unit(x, f"conv_{n}", kernel(f"conv_{n}"), False, 1, weights, sign)
    x = _batch_norm(x, "bn1", weights, HEAD_EPS, sign)
    x = layers.Permute((3, 1, 2), name="to_channels_first")(x)
    x = layers.Flatten(name="flatten")(x)
    fc_w = weights["pre_fc1_weight_dequantized"]
    dense = layers.Dense(fc_w.shape[0], name="pre_fc1")
    x = dense(x)
    dense.set_weights([fc_w.T, weights["pre_fc1_bias_dequantized"]])
    x = _batch_norm(x, "fc1", weights, HEAD_EPS)
    return keras.Model(inputs, x, name="sface")
