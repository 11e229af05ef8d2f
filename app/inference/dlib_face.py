"""Embedder over the Keras port of dlib's face-recognition ResNet (weights from the
`face-recognition-models` package's .dat file, public domain).

The port is built at start-up from the installed file (parsing < 0.1 s; building the Keras
model a few seconds); nothing converted is stored. dlib's descriptor is not normalised
(norms ~1.4-1.6; dlib compares Euclidean distances at 0.6); the service L2-normalises it and
compares by cosine, like every other embedder. With a `head`, the port runs up to the layer
`base_output` and the head maps that tensor to the embedding (built-in Keras layers only).
"""

from __future__ import annotations

import logging

import numpy as np

from app.inference.dlib_net import EMBEDDING_DIM, INPUT_SIZE
from app.inference.sface import l2_normalize, run_in_passes


def build_dlib_model(base_output: str | None = None, head=None):
    """The dlib ResNet port, cut at layer `base_output` (default: its 128-D output), then `head`."""
    import keras

    from app.inference.dlib_dat import read_network
    from app.inference.dlib_net import build_dlib_resnet

    net = build_dlib_resnet(read_network())
    if base_output and base_output != net.layers[-1].name:
        net = keras.Model(net.input, net.get_layer(base_output).output, name="dlib_base")
    if head is None:
        return net
    return keras.Model(net.input, head(net.output), name="dlib_with_head")


class DlibEmbedder:
    """Aligned uint8 RGB faces [N,150,150,3] (dlib's chip framing) -> L2-normalised embeddings."""

    input_size = INPUT_SIZE

    def __init__(self, model_version: str = "dlib-resnet-v1-base-v1", base_output: str | None = None,
                 head=None, embedding_dim: int = EMBEDDING_DIM) -> None:
        import keras

        self._model = build_dlib_model(base_output, head)
        self.model_version = model_version
        self.embedding_dim = embedding_dim
        logging.getLogger("app.inference").info("embedder %s (dlib ResNet Keras port, backend %s)",
                                                model_version, keras.backend.backend())

    def embed(self, faces: np.ndarray) -> np.ndarray:
        if faces.ndim != 4 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected [N,{INPUT_SIZE},{INPUT_SIZE},3] faces, got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        return l2_normalize(run_in_passes(self._model, faces))
