"""Trainable heads on the FaceNet base: the `embedding` the service ships, and the siamese
training models around it (pair head with binary cross-entropy, triplet).

A shipped head contains only layers of app/inference/layers.py (package "faceapi"), which the
service registers itself; PairFeatures below is a training device and never shipped.

How a pair head becomes a distance the service can threshold: the pair head is only a
training device. The service needs one vector per enrolled person (1:N search over
stored embeddings), so what is exported is the `embedding` sub-model below the pair
features, L2-normalised, and the service compares two faces by the cosine distance of
those embeddings, with a threshold tuned on validation pairs. The pair head's own
sigmoid is not a monotone function of that distance (it weighs |a-b|, (a-b)^2 and a*b
per dimension), so it is not shipped; its training signal shapes the embedding so that
same-person pairs end up close under cosine, which one of its inputs is.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from app.inference.layers import L2Normalize
from model.faces import facenet_keras


@keras.saving.register_keras_serializable(package="faceapi")
class PairFeatures(layers.Layer):
    """[|a-b|, (a-b)^2, a*b, cos(a,b)] of two L2-normalised embeddings (cos = sum(a*b))."""

    def call(self, inputs):
        a, b = inputs
        diff = a - b
        prod = a * b
        return ops.concatenate([ops.abs(diff), ops.square(diff), prod, ops.sum(prod, axis=-1, keepdims=True)], -1)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (*shape[:-1], 3 * shape[-1] + 1)


def _projection(x, embedding_dim: int, in_dim: int, seed: int):
    # Identity start when the sizes match: training begins exactly at the pretrained
    # embedding, so a fine-tune can only move away from it when the loss says so.
    if embedding_dim == in_dim:
        init = keras.initializers.Identity()
    else:
        init = keras.initializers.Orthogonal(seed=seed)
    x = layers.Dense(embedding_dim, use_bias=False, kernel_initializer=init, name="projection")(x)
    return L2Normalize(1e-10, name="l2_normalize")(x)


def build_embedding(
    base_stage: str = "Bottleneck",
    embedding_dim: int = 512,
    seed: int = 0,
    trainable_from: str | None = None,
    constants: dict[str, np.ndarray] | None = None,
) -> keras.Model:
    """The `embedding` sub-model: base features -> L2-normalised D-dim embedding.

    Architecture:
        base_stage == "Bottleneck": input = the base's 512-D embedding (graph `embeddings:0`)
            -> dense D (no bias; identity init when D == 512) -> L2 normalise
        base_stage == "stem": input = raw aligned 160x160x3 faces -> prewhiten -> the whole
            pretrained Inception-ResNet-v1 (stages before `trainable_from` frozen)
            -> dense D -> L2 normalise
        any other stage S (e.g. "Block8"): input = the graph tensor feeding S (cached
            features) -> pretrained stages S..Bottleneck (trainable from
            `trainable_from`, default S) -> dense D -> L2 normalise
    """
    if base_stage == "Bottleneck":
        inputs = keras.Input((facenet_keras.EMBEDDING_DIM,), name="base_embedding")
        x = _projection(inputs, embedding_dim, facenet_keras.EMBEDDING_DIM, seed)
        return keras.Model(inputs, x, name="embedding")
    tail = facenet_keras.pretrained_facenet(base_stage, prewhiten=base_stage == "stem", constants=constants)
    facenet_keras.set_trainable_from(tail, trainable_from or base_stage)
    x = _projection(tail.output, embedding_dim, facenet_keras.EMBEDDING_DIM, seed)
    return keras.Model(tail.input, x, name="embedding")


def base_output_tensor(base_stage: str) -> str:
    """Frozen-graph tensor whose value the exported head takes (the metadata's base_output)."""
    if base_stage == "Bottleneck":
        return "embeddings:0"
    return facenet_keras.stage_input_tensor(base_stage)


def build_pair_model(embedding: keras.Model, hidden: int = 256, dropout: float = 0.3, seed: int = 0) -> keras.Model:
    """Siamese pair model: p(same | a, b).

    Architecture: shared `embedding` on both inputs -> PairFeatures [|a-b|, (a-b)^2, a*b, cos]
    -> dense `hidden` relu -> dropout -> dense 1 sigmoid. Trained with binary cross-entropy
        L = -[y log p + (1 - y) log(1 - p)]
    on balanced same/different pairs.
    """
    shape = embedding.input_shape[1:]
    a = keras.Input(shape, name="face_a")
    b = keras.Input(shape, name="face_b")
    feats = PairFeatures(name="pair_features")([embedding(a), embedding(b)])
    x = layers.Dense(hidden, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed),
                     name="pair_dense")(feats)
    x = layers.Dropout(dropout, seed=seed, name="pair_dropout")(x)
    p = layers.Dense(1, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
                     name="p_same")(x)
    return keras.Model([a, b], p, name="pair_model")


def build_triplet_model(embedding: keras.Model) -> keras.Model:
    """Triplet model: the `embedding` itself, trained on batches of P identities x K faces with
    the semi-hard triplet loss (model.losses.TripletSemiHardLoss):
        L = mean over (a, p) of max(0, ||e_a - e_p||^2 - ||e_a - e_n||^2 + margin)
    with n the closest negative farther than p (semi-hard), on L2-normalised embeddings.
    """
    inputs = keras.Input(embedding.input_shape[1:], name="face")
    return keras.Model(inputs, embedding(inputs), name="triplet_model")
