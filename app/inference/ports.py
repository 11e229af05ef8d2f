"""What the Keras ports of pretrained bases (SFace, dlib) share in the service: a network cut
where an artefact's head takes over, run in passes of a few faces, L2-normalised."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from app.domain.vectors import l2_normalize
from app.inference.artifacts import ModelArtifact
from app.inference.embedder import Embedder, check_faces
from app.inference.litert import LiteRTOptions, litert_embedder

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
    """Aligned uint8 RGB faces [N, input_size, input_size, 3] -> L2-normalised embeddings, from a
    Keras port of a pretrained base (a subclass names it: `base_net`, sizes, version, file)."""

    input_size: int
    base_dim: int  # the width of the base's own output
    default_version: str
    what: str  # for the log line
    base_file: tuple[Callable[[], str], str, str]  # (its SHA-256, what it is, the wheel pin)

    @staticmethod
    def base_net():
        raise NotImplementedError

    @classmethod
    def net(cls, base_output: str | None = None, head=None):
        """The port, cut at layer `base_output` (default: its own output), then `head`."""
        return cut_and_attach(cls.base_net(), base_output, head)

    def __init__(self, model_version: str | None = None, base_output: str | None = None,
                 head=None, embedding_dim: int | None = None) -> None:
        import keras

        self._model = self.net(base_output, head)
        self.model_version = model_version or self.default_version
        self.embedding_dim = embedding_dim or self.base_dim
        logging.getLogger("app.inference").info("embedder %s (%s, backend %s)", self.model_version,
                                                self.what, keras.backend.backend())

    @classmethod
    def build(cls, artifact: ModelArtifact, litert: LiteRTOptions | None = None) -> Embedder:
        """The artefact's embedder: the port cut where its head (if any) takes over, or with
        `litert` the same net from its cached .tflite file."""
        artifact.check_base(*cls.base_file)
        if litert is not None:
            return litert_embedder(artifact, litert)
        return cls(model_version=artifact.model_version, head=artifact.load_head(),
                   base_output=artifact.embedder.base_output, embedding_dim=artifact.embedding_dim)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        check_faces(faces, self.input_size)
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        return l2_normalize(run_in_passes(self._model, faces))
