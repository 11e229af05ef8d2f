"""dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1) rebuilt in Keras 3.

The network of dlib's `examples/dnn_face_recognition_ex.cpp`:
    input  [N, 150, 150, 3] RGB 0..255, a chip cut by dlib's get_face_chip_details(shape, 150, 0.25)
    -> (x - mean RGB) / 256
    -> 7x7/2 conv 32 (unpadded, 150 -> 72), affine, ReLU, 3x3/2 max-pool (unpadded, -> 35)
    -> residual levels 32 (3 blocks), 64 (down + 3), 128 (down + 2), 256 (down + 2), 256 (down)
       block: conv 3x3, affine, ReLU, conv 3x3, affine; + the block's input; ReLU
       down-block: the first conv has stride 2; the shortcut is a 2x2/2 average pool
    -> spatial mean -> fc 128 (no bias); output not normalised (dlib compares Euclidean
       distances; the service compares L2-normalised vectors by cosine).

The layers come from the file's records in order (app/inference/backbones/dlib/weights.py); the residual
wiring follows from them: an `avg_pool_2` inside a block is the down-block's shortcut (dlib's
skip back to the block input), an `add_prev_` adds the shortcut (or the block input) to the
branch. Three details make it equal dlib: dlib pads a conv by kernel/2 only at stride 1 and
not at all at stride 2 (the records carry the padding); `add_prev` of tensors of different
shapes zero-fills both to the larger one, aligned at the top-left (channels grow in every
down-block, and 3x3 meets 4x4, 1x1 meets 2x2 in the last two); each `affine` (a frozen
batch norm) is folded into the conv before it. Built-in Keras layers only.
"""

from __future__ import annotations

import numpy as np

from app.inference.backbones.dlib.weights import DlibNet, Layer

# Keras is imported inside the functions below, never at the top: importing it loads TensorFlow
# (seconds, ~1 GB), which importing the registry (app/inference/registry.py) must not.

INPUT_SIZE = 150
EMBEDDING_DIM = 128


def _conv(x, record: Layer, affine: Layer, name: str):
    from keras import layers

    w, b = record.weights["filters"], record.weights["biases"]
    gamma, beta = affine.weights["gamma"], affine.weights["beta"]
    c = record.config
    # at stride 1, padding kernel//2 on every side is Keras' "same" (one op fewer than a pad layer)
    same = (c["stride"], c["stride_x"]) == (1, 1) and (c["padding"], c["padding_x"]) == (c["kernel"] // 2,
                                                                                      c["kernel_x"] // 2)
    if c["padding"] and not same:
        x = layers.ZeroPadding2D(((c["padding"],) * 2, (c["padding_x"],) * 2), name=f"{name}_pad")(x)
    conv = layers.Conv2D(w.shape[0], (c["kernel"], c["kernel_x"]), (c["stride"], c["stride_x"]),
                         padding="same" if same else "valid", name=name)
    x = conv(x)
    # dlib [out, in, h, w] cross-correlation -> Keras [h, w, in, out]; affine folded in
    conv.set_weights([(w * gamma[:, None, None, None]).transpose(2, 3, 1, 0), b * gamma + beta])
    return x


def _zero_fill(x, height: int, width: int, channels: int, name: str):
    """x zero-filled at the bottom/right and in its last channels to the given shape (dlib's add_prev)."""
    from keras import layers

    h, w, c = x.shape[1:]
    if (h, w) != (height, width):
        x = layers.ZeroPadding2D(((0, height - h), (0, width - w)), name=f"{name}_fill_hw")(x)
    if c != channels:  # a fixed 1x1 map that copies the channels and adds zero ones
        grow = layers.Conv2D(channels, 1, use_bias=False, trainable=False, name=f"{name}_fill_c")
        x = grow(x)
        grow.set_weights([np.eye(c, channels, dtype=np.float32)[None, None]])
    return x


def _add_prev(branch, shortcut, name: str):
    from keras import layers

    h, w, c = (max(a, b) for a, b in zip(branch.shape[1:], shortcut.shape[1:]))
    branch = _zero_fill(branch, h, w, c, f"{name}_branch")
    shortcut = _zero_fill(shortcut, h, w, c, f"{name}_shortcut")
    return layers.Add(name=name)([branch, shortcut])


def build_dlib_resnet(net: DlibNet):
    """The Keras model `dlib_resnet`: [N,150,150,3] float RGB 0..255 -> [N,128] (module doc)."""
    import keras
    from keras import layers

    inputs = keras.Input((net.input_size, net.input_size, 3), name="face_rgb")
    x = layers.Normalization(mean=list(net.input_mean), variance=[256.0**2] * 3, name="normalize")(inputs)
    records = iter(net.layers)
    block_input = shortcut = None
    after_add, n_conv, n_block = False, 0, 0
    for record in records:
        kind, c = record.kind, record.config
        if kind == "con_4":
            affine = next(records)
            if affine.kind != "affine_":
                raise ValueError("every conv of this network is followed by an affine layer")
            n_conv += 1
            x = _conv(x, record, affine, f"conv{n_conv}")
        elif kind == "relu_":
            x = layers.ReLU(name=f"block{n_block}_out" if after_add else f"relu{n_conv}")(x)
            if after_add:  # the ReLU after the sum ends the block
                block_input, after_add = x, False
        elif kind == "max_pool_2":
            x = layers.MaxPooling2D((c["window"], c["window_x"]), (c["stride"], c["stride_x"]), name="max_pool")(x)
            block_input = x
        elif kind == "avg_pool_2" and c["window"] == 0:  # avg_pool_everything
            x = layers.GlobalAveragePooling2D(name="pool")(x)
        elif kind == "avg_pool_2":  # a down-block's shortcut: dlib skips back to the block input
            shortcut = layers.AveragePooling2D((c["window"], c["window_x"]), (c["stride"], c["stride_x"]),
                                               name=f"block{n_block + 1}_pool")(block_input)
        elif kind == "add_prev_":
            n_block += 1
            x = _add_prev(x, block_input if shortcut is None else shortcut, f"block{n_block}_add")
            shortcut, after_add = None, True
        elif kind == "fc_2":
            w = record.weights["weights"]
            dense = layers.Dense(w.shape[1], use_bias=False, name="fc")
            x = dense(x)
            dense.set_weights([w])
        else:
            raise ValueError(f"unexpected {kind} record")
    return keras.Model(inputs, x, name="dlib_resnet")
