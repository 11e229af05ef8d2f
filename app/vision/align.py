"""Landmark alignment: a similarity transform maps the 5 detected landmarks onto a
fixed template, and the face is resampled at the embedder's input size.

The template places the landmarks where the pretrained FaceNet expects them: it is
the mean landmark position of MTCNN faces in the upstream FaceNet crop (the box
grown by a margin, resized to 160x160), measured on the CelebA subset by
``python -m model faces template --margin 0.16``. So the base sees faces framed as
in its training, but upright and at a fixed scale. The margin was chosen on the
validation identities (accuracy / TAR@FAR=1e-3 of the base model): 0.00 -> 0.903 / 0.30,
0.08 -> 0.931 / 0.58, 0.16 -> 0.932 / 0.66, 0.25 -> 0.915 / 0.57.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from app.vision.detect import DetectedFace

FACE_SIZE = 160
# (x, y) in a 160x160 crop: left eye, right eye, nose, left mouth corner, right mouth corner
TEMPLATE_160 = np.array(
    [
        [50.6, 66.9],
        [108.4, 65.7],
        [79.7, 92.5],
        [54.9, 110.8],
        [106.2, 109.9],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) with src -> dst.

    Umeyama (1991), without reflection. Returns a 2x3 matrix M: dst ~ M @ [x, y, 1].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(sigma) @ sign) / var_s) if var_s > 0 else 1.0
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(rgb: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Crop the face whose 5 landmarks are given into a size x size uint8 RGB array."""
    template = TEMPLATE_160 * (size / FACE_SIZE)
    m = similarity_transform(landmarks, template)
    # Pillow wants the inverse map: output pixel -> input pixel
    inverse = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    image = Image.fromarray(rgb)
    aligned = image.transform(
        (size, size), Image.AFFINE, data=tuple(inverse.ravel()), resample=Image.BILINEAR
    )
    return np.asarray(aligned, dtype=np.uint8)


def align(rgb: np.ndarray, face: DetectedFace, size: int = FACE_SIZE) -> np.ndarray:
    return align_face(rgb, face.landmarks, size)


def crop_box_with_margin(rgb: np.ndarray, face: DetectedFace, margin: float, size: int = FACE_SIZE):
    """Upstream FaceNet framing: the box grown by `margin` (fraction of its size), resized.

    Returns the crop and the landmarks in crop coordinates (used to measure the template).
    """
    x, y, w, h = face.box
    grow_x, grow_y = w * margin, h * margin
    x0, y0 = max(x - grow_x, 0.0), max(y - grow_y, 0.0)
    x1, y1 = min(x + w + grow_x, rgb.shape[1]), min(y + h + grow_y, rgb.shape[0])
    crop = Image.fromarray(rgb).crop((int(x0), int(y0), int(x1), int(y1))).resize((size, size), Image.BILINEAR)
    scale = np.array([size / (int(x1) - int(x0)), size / (int(y1) - int(y0))])
    return np.asarray(crop), (face.landmarks - [int(x0), int(y0)]) * scale
