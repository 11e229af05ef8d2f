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
