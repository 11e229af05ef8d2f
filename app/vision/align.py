"""Landmark alignment: a similarity transform maps the 5 detected landmarks onto the
embedder's template, and the face is resampled at the embedder's input size.

Each embedder expects faces framed its own way, so the template and the output size
belong to the model artefact (``metadata.json``, key ``alignment``), not to this module:
the FaceNet artefacts carry a template measured on YuNet landmarks in the upstream
FaceNet framing (``python -m model faces template``, margin chosen on validation
identities), an ArcFace-style embedder brings the 112x112 ArcFace template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.vision.detect import DetectedFace


@dataclass(frozen=True)
class AlignmentTemplate:
    """Where the 5 landmarks (image-left eye, image-right eye, nose, image-left mouth corner,
    image-right mouth corner) go in a ``size`` x ``size`` crop."""

    points: np.ndarray  # (5, 2) x, y
    size: int
    source: str = ""

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.shape != (5, 2) or not np.isfinite(pts).all():
            raise ValueError(f"an alignment template has 5 (x, y) points, got shape {pts.shape}")
        if not (8 <= int(self.size) <= 1024) or (pts < 0).any() or (pts > self.size).any():
            raise ValueError(f"alignment template points must lie inside a {self.size} px crop")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "size", int(self.size))

    @classmethod
    def from_metadata(cls, spec: dict) -> "AlignmentTemplate":
        """From an artefact's ``alignment`` block: {"size": 160, "template": [[x, y] x 5], ...}."""
        return cls(np.asarray(spec["template"], dtype=np.float64), int(spec["size"]),
                   str(spec.get("source", "")))

    def to_metadata(self) -> dict:
        return {"size": self.size, "template": np.round(self.points, 2).tolist(),
                "landmarks": "yunet 5-point (eyes, nose tip, mouth corners)", "source": self.source}


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


def align_face(rgb: np.ndarray, landmarks: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """Crop the face whose 5 landmarks are given into a template.size square uint8 RGB array."""
    m = similarity_transform(landmarks, template.points)
    # Pillow wants the inverse map: output pixel -> input pixel
    inverse = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    image = Image.fromarray(rgb)
    aligned = image.transform((template.size, template.size), Image.AFFINE,
                              data=tuple(inverse.ravel()), resample=Image.BILINEAR)
    return np.asarray(aligned, dtype=np.uint8)


def align(rgb: np.ndarray, face: DetectedFace, template: AlignmentTemplate) -> np.ndarray:
    return align_face(rgb, face.landmarks, template)
