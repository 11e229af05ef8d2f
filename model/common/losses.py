"""Metric-learning losses in keras.ops, so they run on TensorFlow, JAX or PyTorch.

Binary cross-entropy for the siamese pair head comes from Keras itself
(`keras.losses.BinaryCrossentropy`); only what Keras lacks lives here.
"""

from __future__ import annotations

import keras
from keras import ops


def pairwise_squared_distances(embeddings):
    """D[i, j] = ||e_i - e_j||^2, clipped at 0 against round-off."""
    sq = ops.sum(ops.square(embeddings), axis=1)
    d = ops.expand_dims(sq, 1) - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
    d = d + ops.expand_dims(sq, 0)
    return ops.maximum(d, 0.0)


def semi_hard_triplet_loss(labels, embeddings, margin: float = 0.2):
    """Triplet loss with semi-hard negative mining inside the batch (FaceNet, Schroff 2015).

    For every valid (anchor a, positive p) pair in the batch:
        L = max(0, d(a,p) - d(a,n) + margin)
    with d the squared Euclidean distance and n the *semi-hard* negative: the closest
    negative that is still farther than the positive, d(a,p) < d(a,n). When no
    such negative exists, the hardest (farthest) negative is used, as in
    tensorflow-addons' TripletSemiHardLoss. The loss is averaged over positive pairs.
    """
    labels = ops.reshape(labels, (-1,))
    d = pairwise_squared_distances(embeddings)
    n = ops.shape(d)[0]
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    eye = ops.eye(n, dtype="bool")
    positive_mask = ops.logical_and(same, ops.logical_not(eye))
    negative_mask = ops.logical_not(same)

    # d_ap[a, p, 1] against d_an[a, 1, n]: which negatives are semi-hard for (a, p)
    d_ap = ops.expand_dims(d, 2)
    d_an = ops.expand_dims(d, 1)
    semi_hard = ops.logical_and(ops.expand_dims(negative_mask, 1), d_an > d_ap)
    big = ops.max(d) + 1.0
    closest_semi_hard = ops.min(ops.where(semi_hard, d_an, big), axis=2)
    hardest = ops.max(ops.where(negative_mask, d, 0.0), axis=1, keepdims=True)
    has_semi_hard = ops.any(semi_hard, axis=2)
    d_neg = ops.where(has_semi_hard, closest_semi_hard, ops.broadcast_to(hardest, ops.shape(d)))

    losses = ops.maximum(d - d_neg + margin, 0.0)
    pos = ops.cast(positive_mask, losses.dtype)
    return ops.sum(losses * pos) / ops.maximum(ops.sum(pos), 1.0)


@keras.saving.register_keras_serializable(package="faceapi")
class TripletSemiHardLoss(keras.losses.Loss):
    """Keras Loss wrapper: y_true are integer class labels, y_pred L2-normalised embeddings."""

    def __init__(self, margin: float = 0.2, name: str = "triplet_semi_hard", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        return semi_hard_triplet_loss(y_true, y_pred, self.margin)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}

