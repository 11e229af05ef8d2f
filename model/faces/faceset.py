"""Aligned face sets (CelebA subset, Yale) made with the service's own decode/detect/align code.

Detections and aligned faces are cached under var/cache, keyed by the detections and by
the source of app/vision/align.py, so a change of the alignment template invalidates them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.faces import data as facedata


@dataclass(frozen=True)
class FaceSet:
    """Aligned faces with identities; `usable` marks faces that were detected."""

    faces: np.ndarray  # (N, 160, 160, 3) uint8
    identities: np.ndarray  # (N,)
    usable: np.ndarray  # (N,) bool


def celeba_faces(data_dir: str | None = None, cache: Path | None = None) -> FaceSet:
    """The CelebA subset through the service's detect/align code (aligned faces cached by content
    of the detections and of app/vision/align.py)."""
    import app.vision.align as align

    celeba = facedata.load_celeba(data_dir)
    det = facedata.detect_all(celeba, cache)
    faces = _cached_alignment("celeba", det, Path(align.__file__), lambda: facedata.aligned_faces(celeba, det), cache)
    return FaceSet(faces, celeba.identities, det.found)


def yale_faces(data_dir: str | None = None, cache: Path | None = None) -> FaceSet:
    """All 164 Yale faces (15 subjects), detected and aligned like CelebA; cached the same way."""
    import app.vision.align as align
    from app.vision.decode import decode_image

    root = facedata.data_dir(data_dir) / "yalefaces"
    files = sorted(p.name for p in root.glob("subject*.png"))
    key = hashlib.sha256("\n".join(files).encode()).hexdigest()[:12]
    det_path = facedata.cache_dir(cache) / f"yale_detections_{key}.npz"
    if det_path.exists():
        z = np.load(det_path)
        det = facedata.Detections(z["n_faces"], z["boxes"], z["scores"], z["landmarks"])
    else:
        from app.vision.detect import MTCNNDetector

        detector = MTCNNDetector()
        n = len(files)
        det = facedata.Detections(np.zeros(n, np.int32), np.full((n, 4), np.nan), np.full(n, np.nan),
                                  np.full((n, 5, 2), np.nan))
        for i, f in enumerate(tqdm(files, desc="detect Yale", unit="img")):
            found = detector.detect(decode_image((root / f).read_bytes()))
            det.n_faces[i] = len(found)
            if found:
                det.boxes[i], det.scores[i], det.landmarks[i] = found[0].box, found[0].score, found[0].landmarks
        np.savez(det_path, n_faces=det.n_faces, boxes=det.boxes, scores=det.scores, landmarks=det.landmarks)

    def align_all() -> np.ndarray:
        out = np.zeros((len(files), 160, 160, 3), np.uint8)
        for i in np.flatnonzero(det.found):
            out[i] = align.align_face(decode_image((root / files[i]).read_bytes()), det.landmarks[i])
        return out

    faces = _cached_alignment("yale", det, Path(align.__file__), align_all, cache)
    subjects = np.array([int(f.split(".")[0].removeprefix("subject")) for f in files])
    return FaceSet(faces, subjects, det.found)


def _cached_alignment(name, det, align_source: Path, compute, cache) -> np.ndarray:
    h = hashlib.sha256(det.landmarks.tobytes() + det.found.tobytes() + align_source.read_bytes())
    path = facedata.cache_dir(cache) / f"{name}_aligned_{h.hexdigest()[:12]}.npy"
    if path.exists():
        return np.load(path)
    faces = compute()
    np.save(path, faces)
    return faces
