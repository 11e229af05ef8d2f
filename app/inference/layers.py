"""The Keras layers a shipped head (model/artifacts/<version>/head.keras) may contain, and the
one per-face prewhitening of FaceNet.

They are registered under the package name "faceapi", the name written into every saved
head, so `keras.saving.load_model` finds them once this module is imported. The trainer
builds its networks from these same classes (model/ imports app/, never the reverse).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def prewhiten(faces):
    """Per-face standardisation of upstream FaceNet: (x - mean) / max(std, 1/sqrt(n)).

    Takes a batch [N, H, W, C] of faces 0..255 (uint8 or float, NumPy or tensor) and returns
    float32; the floor keeps a flat image from dividing by zero.
    """
    x = ops.cast(faces, "float32")
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    std = ops.std(x, axis=(1, 2, 3), keepdims=True)
    # a Python float, not a NumPy float64: the latter would promote the graph to float64
    floor = float(1.0 / np.sqrt(np.prod(x.shape[1:])))
    return (x - mean) / ops.maximum(std, floor)


@keras.saving.register_keras_serializable(package="faceapi")
class Prewhiten(layers.Layer):
    """:func:`prewhiten` inside a model, so that a SavedModel takes raw aligned faces."""

    def call(self, x):
        return prewhiten(x)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="faceapi")
class L2Normalize(layers.Layer):
    """``x * rsqrt(max(sum(x^2), epsilon))`` along the last axis (the frozen graph's `embeddings` op)."""

    def __init__(self, epsilon: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="faceapi")
class ScaledResidual(layers.Layer):
    """``activation(x + scale * up)``: the Inception-ResNet residual, as in the graph (Mul, Add, Relu)."""

    def __init__(self, scale: float, activation: str | None = "relu", **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.activation = activation

    def call(self, inputs):
        x, up = inputs
        out = x + self.scale * up
        return ops.relu(out) if self.activation == "relu" else out

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "activation": self.activation}


@keras.saving.register_keras_serializable(package="faceapi")
class ChannelPReLU(layers.Layer):
    """PReLU with one slope per channel, every slope <= 1, computed as ``max(x, slope * x)``.

    Exact for slopes <= 1 (negative ones included): for x > 0, slope * x <= x; for x < 0,
    slope * x >= x. Two element-wise passes where Keras' PReLU (relu(x) - slope * relu(-x))
    takes five; on SFace's 112x112 activations that was ~30 % of the network's CPU time.
    """

    def build(self, input_shape):
        self.slope = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="slope")

    def call(self, x):
        return ops.maximum(x, x * self.slope)

    def compute_output_shape(self, input_shape):
        return input_shape
