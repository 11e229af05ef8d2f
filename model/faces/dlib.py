"""dlib's face-recognition ResNet as a base: its framing for YuNet landmarks, its features.

dlib cuts 150x150 chips with `get_face_chip_details(shape, 150, padding=0.25)` from its own
5 landmarks (eye corners, nose base), which YuNet does not give. `measure_template` finds where
YuNet's 5 landmarks sit in dlib's chip: on every photo of the validation identities where
dlib's HOG detector finds the same face, YuNet's landmarks are mapped into dlib's own chip
(the transform dlib uses to cut it, in PIL's pixel-centre convention, checked to reproduce
dlib's chip exactly from dlib's points) and averaged. Needs dlib (the bench extra); the
result is the constant DLIB_150 and the artefacts' `alignment` block.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from model.faces import data
from model.faces.features import port_features

# `python -m model faces template --dlib`: mean position of YuNet's landmarks (image-left eye,
# image-right eye, nose tip, image-left mouth corner, image-right mouth corner) in dlib's chip,
# over the validation identities' photos.
DLIB_150 = ((46.6, 44.42), (101.32, 44.95), (73.14, 76.86), (50.76, 100.79), (97.16, 101.93))
BASE_OUTPUT = "fc"  # the port's 128-D output layer


def dlib_template(points=DLIB_150):
    from app.vision.align import AlignmentTemplate

    return AlignmentTemplate(np.array(points), 150, "dlib chip 150, padding 0.25 (YuNet landmarks, "
                                                     "python -m model faces template --dlib)")


def dlib_features(faces: np.ndarray, usable: np.ndarray, flip: bool, cache: Path | None = None,
                  batch: int = 8) -> np.ndarray:
    """The frozen port's 128-D output (not normalised) for every usable face, cached."""
    from app.inference.backbones.dlib.weights import dat_sha256
    from app.inference.backbones.dlib.embedder import build_dlib_model

    return port_features(f"dlib_{BASE_OUTPUT}", build_dlib_model, dat_sha256(), faces, usable, flip, cache,
                         batch)


def embedder_spec(head_file: str | None = None) -> dict:
    from app.inference.backbones.dlib.weights import DAT_FILE, PIN, dat_sha256

    return {
        "kind": "dlib-keras",
        "base": f"{PIN}:{DAT_FILE}",
        "base_sha256": dat_sha256(),
        "base_output": BASE_OUTPUT,
        "head": head_file,
        "input_size": 150,
        "preprocessing": "YuNet 5 landmarks, similarity alignment to dlib's 150 chip framing (padding "
                         "0.25), RGB 0..255 (the port subtracts dlib's mean RGB and divides by 256)",
    }


def _image_to_chip(details) -> np.ndarray:
    """2x3 map from image to chip coordinates of a dlib `chip_details` (dlib's get_mapping_to_chip:
    the chip's corners go to the rectangle's corners rotated by `angle` about its centre)."""
    r = details.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    c, s = math.cos(details.angle), math.sin(details.angle)

    def rotate(x, y):
        return c * (x - cx) - s * (y - cy) + cx, s * (x - cx) + c * (y - cy) + cy

    chip = np.array([[0, 0], [details.cols - 1, 0], [0, details.rows - 1]], float)
    image = np.array([rotate(r.left(), r.top()), rotate(r.right(), r.top()), rotate(r.left(), r.bottom())])
    to_image = np.linalg.solve(np.c_[chip, np.ones(3)], image).T
    return np.linalg.inv(np.vstack([to_image, [0, 0, 1]]))[:2]


def _validation_faces(data_dir: str | None, seed: int, step: int = 1):
    """(photo, dlib's 5-point shape, YuNet's landmarks) for the validation identities' photos
    (every `step`-th) where dlib's HOG detector finds one face, the one YuNet found (its nose
    inside dlib's box)."""
    import dlib
    from PIL import Image

    from app.core.wheel_files import installed_file

    predictor = dlib.shape_predictor(str(installed_file(
        "face-recognition-models", "face_recognition_models/models/shape_predictor_5_face_landmarks.dat")))
    detector = dlib.get_frontal_face_detector()
    celeba = data.load_celeba(data_dir)
    det = data.detect_all(celeba)
    val = np.flatnonzero(det.found & np.isin(celeba.identities, data.split_identities(celeba.identities, seed)["val"]))
    for i in val[::step]:
        rgb = np.asarray(Image.open(celeba.path(i)).convert("RGB"))
        found = detector(rgb, 1)
        yunet = det.landmarks[i]
        if len(found) == 1 and found[0].contains(dlib.point(int(yunet[2, 0]), int(yunet[2, 1]))):
            yield rgb, predictor(rgb, found[0]), yunet


def measure_template(data_dir: str | None = None, seed: int = 0) -> tuple[int, np.ndarray]:
    """(faces used, 5x2 template) on the validation identities' photos (module doc)."""
    import dlib

    points = []
    for _, shape, yunet in _validation_faces(data_dir, seed):
        m = _image_to_chip(dlib.get_face_chip_details(shape, 150, 0.25))
        # dlib's coordinates count pixel centres from 0, PIL's (app/vision/align.py) from 0.5
        points.append((yunet - 0.5) @ m[:, :2].T + m[:, 2] + 0.5)
    return len(points), np.mean(points, axis=0)


def framing_agreement(data_dir: str | None = None, seed: int = 0, step: int = 3) -> dict:
    """Cosine between the port's descriptors of dlib's own chip and of the chip our template cuts
    from YuNet's landmarks, on every `step`-th validation photo: how well the template stands in."""
    import dlib

    from app.inference.backbones.dlib.embedder import DlibEmbedder
    from app.vision.align import align_face

    own, ours = [], []
    for rgb, shape, yunet in _validation_faces(data_dir, seed, step):
        own.append(dlib.get_face_chip(rgb, shape, 150, 0.25))
        ours.append(align_face(rgb, yunet, dlib_template()))
    embedder = DlibEmbedder()
    c = np.sum(embedder.embed(np.stack(own)) * embedder.embed(np.stack(ours)), axis=1)
    return {"faces": len(c), "median": round(float(np.median(c)), 4), "p5": round(float(np.percentile(c, 5)), 4),
            "min": round(float(c.min()), 4)}
