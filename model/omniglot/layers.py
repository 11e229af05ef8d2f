"""The registered Keras layer of the Koch et al. siamese net (no Lambda layers, so a saved
model reloads under any Keras 3 backend). The triplet net's L2 normalisation is the one of
app/inference/layers.py."""

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
class AllPairs(keras.layers.Layer):
    """Every ordered pair of a batch's rows: (B, D) -> (left, right), each (B * B, D), with
    left[i * B + j] = h_i and right[i * B + j] = h_j. It feeds the siamese head with all
    B^2 pairs of one batch of embeddings (`nets.build_in_batch_siamese`)."""

    def call(self, h):
        n = ops.shape(h)[0]
        return ops.repeat(h, n, axis=0), ops.tile(h, (n, 1))

    def compute_output_shape(self, input_shape):
        rows = None if input_shape[0] is None else input_shape[0] ** 2
        return (rows, input_shape[1]), (rows, input_shape[1])


@keras.saving.register_keras_serializable(package="omniglot")
class SquareMatrix(keras.layers.Layer):
    """(B * B, 1) head outputs -> the (B, B) matrix of P(same) for every pair of the batch."""

    def call(self, p):
        n = ops.cast(ops.sqrt(ops.cast(ops.shape(p)[0], "float32")) + 0.5, "int32")
        return ops.reshape(p, (n, n))

    def compute_output_shape(self, input_shape):
        return (None, None)
