"""Bytes -> one aligned face: the face of the person the photo is of.

The face is the largest one, unless other faces are of comparable size (within
``dominance_ratio``): then the one the detector is surest of (size tells nothing between
them, and a false detection on a shirt or a poster can be a little larger than the real
face: seen on a CelebA photo enlarged 2x). Enroll also needs that face to dominate the
photo (every other face at most 1/``dominance_ratio`` of its size: people in the
background are fine, two people side by side are not), to be large enough and to be a
clear detection. Every refusal carries the measured values that caused it.

A large JPEG is first decoded at a reduced scale (``reduce_to``, e.g. a 4000 px photo at
1/4): when the detector's first pass finds there a face with at least as many pixels as the
aligned crop has, that face is aligned from the reduced image (decoding a 12-megapixel photo
in full took ~0.5 s, the reduced one ~0.05 s); otherwise (no face, a smaller one) the photo
is decoded in full and searched with every pass, as any other photo.

Blocking (decode and detection): the API runs it in a thread pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from app.core import errors
from app.vision.align import AlignmentTemplate, align
from app.vision.decode import DecodeLimits, decode_image, decode_reduced
from app.vision.detect import DetectedFace, FaceDetector


@dataclass(frozen=True)
class EnrollRules:
    """Thresholds of the enroll checks; README ("Refusals") says where each value comes from."""

    min_face_size: int = 20  # px, shorter side of the detector's box
    min_score: float = 0.75  # detector confidence
    dominance_ratio: float = 1.25  # largest face size / second largest face size


@dataclass(frozen=True)
class FaceSample:
    aligned: np.ndarray  # template.size x template.size x 3 uint8
    face: DetectedFace
    faces_detected: int
    timings_ms: dict = field(default_factory=dict)


def subject_index(faces: list[DetectedFace], ratio: float) -> int:
    """Which of `faces` (largest first) the photo is of: of the faces within `ratio` of the
    largest one's size, the most confident. On the 24 CelebA photos with two such faces this
    is the labelled person in 22, the largest face in 19 (bench/enroll_rules.py)."""
    comparable = [i for i, f in enumerate(faces) if faces[0].size < ratio * f.size]
    return max(comparable, key=lambda i: faces[i].score)


def _box(face: DetectedFace) -> list[float]:
    return [round(v, 1) for v in face.box]


def _enlarged(face: DetectedFace, k: int) -> DetectedFace:
    """A face found in an image decoded at 1/k, in the photo's own pixels."""
    return DetectedFace(tuple(v * k for v in face.box), face.score, face.landmarks * k)


class FacePipeline:
    def __init__(self, detector: FaceDetector, limits: DecodeLimits, template: AlignmentTemplate,
                 rules: EnrollRules = EnrollRules(), reduce_to: int = 0) -> None:
        self.detector = detector
        self.limits = limits
        self.template = template
        self.rules = rules
        # the reduced decode needs a detector that can run its first pass alone (YuNet)
        self.reduce_to = reduce_to if hasattr(detector, "run_pass") else 0

    def extract(self, data: bytes, enroll: bool) -> FaceSample:
        """Decode, detect and align the largest face; for enroll, check the enroll rules."""
        t0 = time.perf_counter()
        rgb, k = decode_reduced(data, self.limits, self.reduce_to)
        t1 = time.perf_counter()
        faces = []
        if k > 1:
            faces = self.detector.run_pass(rgb, "base")
            if not faces or faces[0].size < self.template.size:  # too few pixels: the full photo
                t = time.perf_counter()
                rgb, k = decode_image(data, self.limits), 1
                t1 += time.perf_counter() - t
                faces = []
        if not faces:
            faces = self.detector.detect(rgb)
        t2 = time.perf_counter()
        if not faces:
            height, width = rgb.shape[:2]
            raise errors.NoFace(
                f"No face was found in the {width}x{height} image (searched at several scales); "
                "send a photo with one frontal face", image_size=[width, height])
        subject = subject_index(faces, self.rules.dominance_ratio)
        aligned = align(rgb, faces[subject], self.template)  # in rgb's pixels
        if k > 1:
            faces = [_enlarged(f, k) for f in faces]
        if enroll:  # a photo with comparable faces is refused, whichever is the subject
            self.check_enroll(faces)
        t3 = time.perf_counter()
        timings = {"decode": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "align": (t3 - t2) * 1e3}
        return FaceSample(aligned, faces[subject], len(faces), timings)

    def check_enroll(self, faces: list[DetectedFace]) -> None:
        """Raise the refusal for a photo that must not be enrolled; `faces` largest first."""
        rules, main = self.rules, faces[0]
        comparable = [f for f in faces[1:] if main.size < rules.dominance_ratio * f.size]
        if comparable:
            ratio = main.size / comparable[0].size
            raise errors.MultipleFaces(
                f"{1 + len(comparable)} faces of comparable size were found (the largest is "
                f"{main.size:.0f} px, the next {comparable[0].size:.0f} px: ratio {ratio:.2f}, "
                f"below {rules.dominance_ratio}); enrolling needs one face that clearly dominates",
                faces_detected=len(faces), comparable_faces=1 + len(comparable),
                face_sizes=[round(f.size, 1) for f in faces[:10]], size_ratio=round(ratio, 3),
                required_ratio=rules.dominance_ratio)
        if main.size < rules.min_face_size:
            raise errors.FaceTooSmall(
                f"The face is {main.size:.0f} px; enrolling needs at least {rules.min_face_size} px",
                face_size=round(main.size, 1), min_face_size=rules.min_face_size, box=_box(main))
        if main.score < rules.min_score:
            raise errors.LowQuality(
                f"Face detection confidence {main.score:.2f} is below {rules.min_score}; "
                "send a sharper, frontal, well-lit photo",
                score=round(main.score, 3), min_score=rules.min_score, box=_box(main))
