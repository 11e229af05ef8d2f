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
from app.inference.backbones.dlib.net import EMBEDDING_DIM, INPUT_SIZE, build_dlib_resnet
from app.inference.backbones.dlib.weights import dat_sha256, read_network
from app.inference.ports import PortEmbedder


class DlibEmbedder(PortEmbedder):
    """Aligned uint8 RGB faces [N,150,150,3] (dlib's chip framing) -> L2-normalised embeddings."""

    input_size, base_dim = INPUT_SIZE, EMBEDDING_DIM
    default_version, what = "dlib-resnet-v1-base", "dlib ResNet Keras port"
    base_file = (dat_sha256, "dlib face-recognition model file", FACE_RECOGNITION_MODELS)

    @staticmethod
    def base_net():
        return build_dlib_resnet(read_network())


build_dlib_model = DlibEmbedder.net  # (base_output, head): the cut port, for the trainer too
build = DlibEmbedder.build  # kind `dlib-keras` (app/inference/registry.py)
