"""Aligned face sets (CelebA subset, Yale) made with the service's own decode/detect/align code.

Detections and aligned faces are cached under var/cache, keyed by the detections (and so the
detector), the alignment template and the source of app/vision/align.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.common import paths
from model.faces import data as facedata


@dataclass(frozen=True)
class FaceSet:
    """Aligned faces with identities; `usable` marks faces that were detected."""

    faces: np.ndarray  # (N, size, size, 3) uint8
    identities: np.ndarray  # (N,)
    usable: np.ndarray  # (N,) bool


def celeba_faces(data_dir: str | None = None, cache: Path | None = None, template=None) -> FaceSet:
    """The CelebA subset through the service's detect/align code, aligned on `template`
    (default: the FaceNet artefacts' one)."""
    template = template or facedata.default_template()
    celeba = facedata.load_celeba(data_dir)
    det = facedata.detect_all(celeba, cache)
    faces = _cached_alignment("celeba", det, template,
                              lambda: facedata.aligned_faces(celeba, det, template), cache)
    return FaceSet(faces, celeba.identities, det.found)


def yale_faces(data_dir: str | None = None, cache: Path | None = None, template=None) -> FaceSet:
    """All 164 Yale faces (15 subjects), detected and aligned like CelebA; cached the same way."""
    template = template or facedata.default_template()
    images = sorted(paths.data_dir(data_dir).joinpath("yalefaces").glob("subject*.png"))
    det = facedata.detect_images("yale", images, cache)
    faces = _cached_alignment("yale", det, template,
                              lambda: facedata.align_images(images, det, template), cache)
    subjects = np.array([int(p.name.split(".")[0].removeprefix("subject")) for p in images])
    return FaceSet(faces, subjects, det.found)


def _cached_alignment(name, det, template, compute, cache) -> np.ndarray:
    import app.vision.align as align

    h = hashlib.sha256(det.landmarks.tobytes() + det.found.tobytes() + template.points.tobytes()
                       + str(template.size).encode() + Path(align.__file__).read_bytes())
    path = paths.cache_dir(cache) / f"{name}_aligned_{h.hexdigest()[:12]}.npy"
    if path.exists():
        return np.load(path)
    faces = compute()
    np.save(path, faces)
    return faces
