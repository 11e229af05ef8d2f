"""Bytes -> one aligned face, with the enroll rules: exactly one clear, large enough face.

Blocking (decode and MTCNN): the API runs it in a thread pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from app.core import errors
from app.vision.align import FACE_SIZE, align
from app.vision.decode import DecodeLimits, decode_image
from app.vision.detect import DetectedFace, FaceDetector

ENROLL_MIN_SCORE = 0.95


@dataclass(frozen=True)
class FaceSample:
    aligned: np.ndarray  # FACE_SIZE x FACE_SIZE x 3 uint8
    face: DetectedFace
    faces_detected: int
    timings_ms: dict = field(default_factory=dict)


class FacePipeline:
    def __init__(self, detector: FaceDetector, limits: DecodeLimits, min_face_size: int = 20) -> None:
        self.detector = detector
        self.limits = limits
        self.min_face_size = min_face_size

    def extract(self, data: bytes, enroll: bool) -> FaceSample:
        """Decode, detect and align. For enroll, exactly one clear face of at least
        `min_face_size` px is required; otherwise the largest face is used."""
        t0 = time.perf_counter()
        rgb = decode_image(data, self.limits)
        t1 = time.perf_counter()
        faces = self.detector.detect(rgb)
        t2 = time.perf_counter()
        if not faces:
            raise errors.NoFace("No face was found in the image; send a photo with one frontal face")
        clear = [f for f in faces if f.size >= self.min_face_size]
        if enroll:
            if len(clear) > 1:
                raise errors.MultipleFaces(
                    f"{len(clear)} faces were found; enrolling needs a photo with exactly one face",
                    faces_detected=len(faces),
                )
            if not clear:
                raise errors.FaceTooSmall(
                    f"The face is {faces[0].size:.0f} px; enrolling needs at least {self.min_face_size} px"
                )
            if clear[0].score < ENROLL_MIN_SCORE:
                raise errors.LowQuality(
                    f"Face detection confidence {clear[0].score:.2f} is below {ENROLL_MIN_SCORE}; "
                    "send a sharper, frontal photo"
                )
        face = faces[0]  # largest
        aligned = align(rgb, face, FACE_SIZE)
        t3 = time.perf_counter()
        timings = {"decode": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "align": (t3 - t2) * 1e3}
        return FaceSample(aligned, face, len(faces), timings)
