"""Registered Keras layers of the Omniglot siamese nets (no Lambda layers, so a saved
model reloads under any Keras 3 backend)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="omniglot")
class L1Distance(keras.layers.Layer):
    """Component-wise L1 distance of the twins' features: |h1 - h2|.

    Koch et al. (2015) feed this vector to a 1-unit sigmoid layer, so the learned
    weights alpha_j say how much each feature matters: p = sigmoid(sum_j alpha_j |h1_j - h2_j| + b).
    """

    def call(self, inputs):
        a, b = inputs
        return ops.abs(a - b)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="omniglot")
class L2Normalize(keras.layers.Layer):
    """x / max(||x||_2, eps) along the last axis: puts a triplet embedding on the unit sphere."""

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), self.epsilon))
        return x / norm

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
