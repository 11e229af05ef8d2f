"""Koch et al. (2015) convolutional siamese network, and a triplet variant of its tower.

Backend-agnostic Keras 3 (keras.ops only), so the same builders run with
KERAS_BACKEND=tensorflow, jax or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

from app.inference.layers import L2Normalize
from model.omniglot.layers import AllPairs, L1Distance, SquareMatrix

BASE_FILTERS = (64, 128, 128, 256)
PAPER_KERNELS = (10, 7, 4, 4)


# The paper's initialisation (section 3.3): conv weights N(0, 1e-2), conv biases
# N(0.5, 1e-2); fully connected weights from the much wider N(0, 2e-1), biases N(0.5, 1e-2).
# init="he" (He-normal convs, Glorot dense, zero biases) is the CPU presets' option: with
# the paper's biases the input-dependent part of each activation is ~1 % of the
# constant part by conv4, which a long GPU run can afford to unlearn and a short CPU
# run cannot (docs/omniglot.md, "Probes").
def _conv_init(init: str = "paper") -> dict:
    if init == "he":
        return {"kernel_initializer": keras.initializers.HeNormal(), "bias_initializer": "zeros"}
    return {
        "kernel_initializer": keras.initializers.RandomNormal(0.0, 1e-2),
        "bias_initializer": keras.initializers.RandomNormal(0.5, 1e-2),
    }


def _dense_init(init: str = "paper") -> dict:
    if init == "he":
        return {"kernel_initializer": keras.initializers.GlorotUniform(), "bias_initializer": "zeros"}
    return {
        "kernel_initializer": keras.initializers.RandomNormal(0.0, 2e-1),
        "bias_initializer": keras.initializers.RandomNormal(0.5, 1e-2),
    }


@dataclass(frozen=True)
class Tower:
    """The twin's shape, shared by every net below. The defaults are the paper's twin.

    `l2[i]` is the L2 penalty coefficient of layer i (conv1-4, dense; a sixth entry, when
    given, is the siamese head's). `batch_norm` (not in the paper) puts a batch norm
    between each conv and its ReLU; `init` is "paper" or "he" (see `_conv_init`).
    """

    image_size: int = 105
    width: float = 1.0
    conv_kernels: Sequence[int] = PAPER_KERNELS
    dense_units: int = 4096
    l2: Sequence[float] = (2e-4, 2e-4, 2e-4, 2e-4, 1e-3)
    init: str = "paper"
    batch_norm: bool = False

    @classmethod
    def from_config(cls, cfg) -> Tower:
        """cfg: model.omniglot.config.OmniglotConfig."""
        return cls(cfg.image_size, cfg.width, cfg.conv_kernels, cfg.dense_units, cfg.l2, cfg.init, cfg.batch_norm)

    def input(self, name: str) -> keras.KerasTensor:
        return keras.Input((self.image_size, self.image_size, 1), name=name)

    def head(self) -> keras.Model:
        return build_head(self.dense_units, self.l2[5] if len(self.l2) > 5 else 0.0, init=self.init)


def build_embedding(tower: Tower = Tower(), dense_activation: str | None = "sigmoid") -> keras.Model:
    """The twin ("embedding"): image_size^2 x 1 -> dense_units sigmoid features h.

        conv1 64w@k1 ReLU -> maxpool 2
        conv2 128w@k2 ReLU -> maxpool 2
        conv3 128w@k3 ReLU -> maxpool 2
        conv4 256w@k4 ReLU -> flatten
        dense dense_units sigmoid

    With the default `Tower()` (105x105, w=1, kernels 10/7/4/4, 4096) this is exactly the
    paper's twin: 96 -> 48 -> 42 -> 21 -> 18 -> 9 -> 6, flatten 6x6x256 = 9216.
    `dense_activation` is the paper's sigmoid except for the triplet variant.
    """
    image_size, width, conv_kernels, l2 = tower.image_size, tower.width, tower.conv_kernels, tower.l2
    init, batch_norm = tower.init, tower.batch_norm
    filters = [max(1, round(f * width)) for f in BASE_FILTERS]
    if len(conv_kernels) != 4 or len(l2) < 5:
        raise ValueError("need 4 conv kernel sizes and >= 5 L2 coefficients")
    side = image_size
    for i, k in enumerate(conv_kernels):
        side = side - k + 1
        if i < 3:
            side //= 2
        if side < 1:
            raise ValueError(f"input {image_size} is too small for kernels {tuple(conv_kernels)}")

    inputs = tower.input("image")
    x = inputs
    for i, (f, k) in enumerate(zip(filters, conv_kernels, strict=True)):
        x = keras.layers.Conv2D(
            f,
            k,
            activation=None if batch_norm else "relu",
            kernel_regularizer=keras.regularizers.L2(l2[i]),
            name=f"conv{i + 1}",
            **_conv_init(init),
        )(x)
        if batch_norm:  # named conv<i>_bn so the layer-wise SGD gives it its conv's rate
            x = keras.layers.BatchNormalization(name=f"conv{i + 1}_bn")(x)
            x = keras.layers.ReLU(name=f"conv{i + 1}_relu")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    h = keras.layers.Dense(
        tower.dense_units,
        activation=dense_activation,
        kernel_regularizer=keras.regularizers.L2(l2[4]),
        name="dense",
        **_dense_init(init),
    )(x)
    return keras.Model(inputs, h, name="embedding")


def build_head(dense_units: int, l2: float = 0.0, init: str = "paper") -> keras.Model:
    """The siamese join ("head"): (h1, h2) -> p = sigmoid(sum_j alpha_j |h1_j - h2_j| + b)."""
    h1 = keras.Input((dense_units,), name="h1")
    h2 = keras.Input((dense_units,), name="h2")
    d = L1Distance(name="l1_distance")([h1, h2])
    p = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name="prediction",
        **_dense_init(init),
    )(d)
    return keras.Model([h1, h2], p, name="head")


def build_siamese(tower: Tower = Tower()) -> keras.Model:
    """Koch et al.'s siamese net: one shared `embedding` twin applied to both images,
    then the `head` (L1 distance -> dense 1 sigmoid) giving P(same character).

    Parameter count at the paper's settings: 38,951,745.
    """
    embedding, head = build_embedding(tower), tower.head()
    a = tower.input("left")
    b = tower.input("right")
    p = head([embedding(a), embedding(b)])  # the same `embedding` object: shared weights
    return keras.Model([a, b], p, name="siamese")


def build_in_batch_siamese(tower: Tower = Tower()) -> keras.Model:
    """The paper's siamese (the same `embedding` twin and L1 `head`), trained on every pair
    of a batch: B images in, the (B, B) matrix of P(same) out.

    A sampled pair costs two tower passes for one bit of supervision; a batch of P classes
    x K drawers costs B = PK passes for B(B - 1) pairs, K - 1 positives and (P - 1)K
    negatives per image (what the triplet variant gains from). The loss stays the paper's
    binary cross-entropy (`train.InBatchPairBCE`); evaluation uses `embedding` and `head`
    exactly as for `build_siamese`.
    """
    embedding, head = build_embedding(tower), tower.head()
    x = tower.input("image")
    left, right = AllPairs(name="all_pairs")(embedding(x))
    p = SquareMatrix(name="pair_matrix")(head([left, right]))
    return keras.Model(x, p, name="in_batch_siamese")


def build_triplet_net(tower: Tower = Tower()) -> keras.Model:
    """Beyond the paper: the same conv tower, then a *linear* dense layer and L2
    normalisation, for a semi-hard triplet loss. One image in, one unit-norm embedding
    out; the tower is reachable as the sub-model named `embedding`.

    Linear, not sigmoid: sigmoid features all live in the positive orthant around
    (0.5, ..., 0.5), so after normalisation every embedding starts nearly parallel
    and the triplet margin has almost no room to act.
    """
    embedding = build_embedding(tower, dense_activation=None)
    x = tower.input("image")
    z = L2Normalize(1e-12, name="l2_normalize")(embedding(x))
    return keras.Model(x, z, name="triplet")


def build_from_config(cfg) -> keras.Model:
    """The net a config's objective asks for (cfg: model.omniglot.config.OmniglotConfig)."""
    build = {"siamese": build_siamese, "in_batch_siamese": build_in_batch_siamese,
             "triplet": build_triplet_net}[cfg.objective.name]
    return build(Tower.from_config(cfg))
