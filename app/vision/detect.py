"""Face detection with 5 landmarks (MTCNN, weights shipped in the `mtcnn` wheel).

Detection dominates latency and its cost grows with the pixel count, so large
photos are downscaled for detection and the boxes and landmarks are scaled back:
alignment then crops from the full-resolution original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

# landmark order everywhere: left eye, right eye, nose, left mouth corner, right mouth corner
# ("left" as seen in the image)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x, y, width, height in original pixels
    score: float
    landmarks: np.ndarray  # (5, 2) x, y in original pixels

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def size(self) -> float:
        """Shorter side of the box, in original pixels."""
        return float(min(self.box[2], self.box[3]))


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an HxWx3 uint8 RGB image, largest first."""


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
