"""What the Keras ports of pretrained bases (SFace, dlib) share in the service: a network cut
where an artefact's head takes over, run in passes of a few faces, L2-normalised."""

from __future__ import annotations

import logging

import numpy as np

from app.domain.vectors import l2_normalize
from app.inference.embedder import check_faces

# Keras is imported inside the functions below, never at the top: importing it loads TensorFlow
# (seconds, ~1 GB), which importing the registry (app/inference/registry.py) must not.

# Faces per forward pass. SFace's first layers' activations are 112x112x64 floats per face, so a
# batch of 32 in one pass raised the process RSS from ~750 to ~1,115 MB; passes of 8 kept it at
# ~800 MB and were no slower per face on 2 CPU cores (bench/embedders.py, docs/models.md).
CHUNK = 8


def run_in_passes(model, faces: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """model(faces) computed `chunk` faces at a time (the pass size bounds the activations' memory)."""
    x = np.asarray(faces, dtype=np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(x[s : s + chunk])) for s in range(0, len(x), chunk)])


def cut_and_attach(net, base_output: str | None = None, head=None):
    """`net` cut at layer `base_output` (default: its output), then `head` (if any)."""
    import keras

    if base_output and base_output != net.layers[-1].name:
        net = keras.Model(net.input, net.get_layer(base_output).output, name=f"{net.name}_base")
    if head is None:
        return net
    return keras.Model(net.input, head(net.output), name=f"{net.name}_with_head")


class PortEmbedder:
    """Aligned uint8 RGB faces [N, input_size, input_size, 3] -> L2-normalised embeddings."""

    input_size: int

    def __init__(self, model, model_version: str, embedding_dim: int, what: str) -> None:
        import keras

        self._model = model
        self.model_version = model_version
        self.embedding_dim = embedding_dim
        logging.getLogger("app.inference").info("embedder %s (%s, backend %s)", model_version, what,
                                                keras.backend.backend())

    def embed(self, faces: np.ndarray) -> np.ndarray:
        check_faces(faces, self.input_size)
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        return l2_normalize(run_in_passes(self._model, faces))
