"""Bytes -> one aligned face: the face of the person the photo is of.

The subject is chosen as a person would (app/vision/subject.py: one score from the face's
size, its closeness to the photo's centre, how much of it the frame cuts and the detector's
confidence). Enroll refuses a photo (``multiple_faces``, listing every face) only when the
best two faces cannot be told apart on any of these; it also needs the face to be large
enough and a clear detection. A client that knows which face it means sends ``face_box``
([x, y, w, h] in the photo's pixels): the detected face overlapping it most (IoU at least
``FACE_BOX_MIN_IOU``) is taken, whatever the subject rule says. Every refusal carries the
measured values that caused it.

A large JPEG is first decoded at a reduced scale (``reduce_to``, e.g. a 4000 px photo at
1/4): when the detector's first pass (with the second, for a large face) finds there a face with
at least as many pixels as the aligned crop has, the faces are aligned from the reduced image (decoding a 12-megapixel photo
in full took ~0.5 s, the reduced one ~0.05 s); otherwise (no face, a smaller one) the photo
is decoded in full and searched with every pass, as any other photo.

Blocking (decode and detection): the API runs it in a thread pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from app.core.config import default_of
from app.domain import errors
from app.vision.align import AlignmentTemplate, align
from app.vision.decode import DecodeLimits, decode_image, decode_reduced
from app.vision.detect import DetectedFace, FaceDetector, box_iou
from app.vision.subject import SubjectChoice, choose_subject

MAX_CANDIDATES = 50  # faces listed in a refusal (multiple_faces, face_box_no_match), largest first
FACE_BOX_MIN_IOU = 0.3  # a face_box must overlap a detected face this much (intersection/union)


@dataclass(frozen=True)
class EnrollRules:
    """Thresholds of the enroll checks; README ("Refusals") says where each value comes from."""

    min_face_size: int = default_of("min_face_size")  # px, shorter side of the detector's box
    min_score: float = default_of("enroll_min_score")  # detector confidence
    dominance_ratio: float = default_of("enroll_dominance_ratio")  # closer in size: "the same size"


@dataclass(frozen=True)
class FaceSample:
    aligned: np.ndarray  # template.size x template.size x 3 uint8
    face: DetectedFace
    faces_detected: int
    timings_ms: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PhotoFaces:
    """Every face of a photo (in its own pixels, largest first) and which is the subject."""

    faces: list[DetectedFace]
    subject: int
    choice: SubjectChoice
    image_size: tuple[int, int]  # width, height


def _box(face: DetectedFace) -> list[float]:
    return [round(v, 1) for v in face.box]


def face_summary(face: DetectedFace, subject_score: float | None = None) -> dict:
    """A face as refusals and responses list it: box, size, score, landmarks."""
    out = {"box": _box(face), "size": round(face.size, 1), "score": round(face.score, 4),
           "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks]}
    if subject_score is not None:
        out["subject_score"] = round(subject_score, 3)
    return out


def pick_face_box(faces: list[DetectedFace], face_box: tuple[float, float, float, float]) -> int:
    """The detected face overlapping `face_box` most; FaceBoxNoMatch when none reaches
    FACE_BOX_MIN_IOU."""
    overlaps = [box_iou(f.box, face_box) for f in faces]
    best = int(np.argmax(overlaps))
    if overlaps[best] < FACE_BOX_MIN_IOU:
        raise errors.FaceBoxNoMatch(
            f"No detected face overlaps face_box {[round(v, 1) for v in face_box]} enough (best "
            f"overlap {overlaps[best]:.2f}, needed {FACE_BOX_MIN_IOU}); choose one of the "
            f"{len(faces)} faces listed in `candidates`",
            face_box=[round(v, 1) for v in face_box], best_overlap=round(overlaps[best], 3),
            min_overlap=FACE_BOX_MIN_IOU, candidates=[face_summary(f) for f in faces[:MAX_CANDIDATES]])
    return best


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
        self.reduce_to = reduce_to if hasattr(detector, "detect_first") else 0

    def locate(self, data: bytes) -> tuple[np.ndarray, int, list[DetectedFace], dict]:
        """Decode and detect: the image (decoded at 1/k), k, the faces in its pixels, timings."""
        t0 = time.perf_counter()
        rgb, k = decode_reduced(data, self.limits, self.reduce_to)
        t1 = time.perf_counter()
        faces = []
        if k > 1:
            faces = self.detector.detect_first(rgb)
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
                "send a photo with one frontal face", image_size=[width * k, height * k])
        return rgb, k, faces, {"decode": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3}

    def photo_faces(self, faces: list[DetectedFace], width: int, height: int) -> PhotoFaces:
        choice = choose_subject(faces, width, height, self.rules.dominance_ratio)
        return PhotoFaces(faces, choice.index, choice, (width, height))

    def detect(self, data: bytes) -> PhotoFaces:
        """Every face of the photo, in its pixels, and the subject; nothing aligned."""
        rgb, k, found, _ = self.locate(data)
        faces = [_enlarged(f, k) for f in found] if k > 1 else found
        return self.photo_faces(faces, rgb.shape[1] * k, rgb.shape[0] * k)

    def extract(self, data: bytes, enroll: bool,
                face_box: tuple[float, float, float, float] | None = None) -> FaceSample:
        """Decode, detect and align the subject's face (or the face at `face_box`); for enroll,
        check the enroll rules."""
        rgb, k, found, timings = self.locate(data)
        t2 = time.perf_counter()
        faces = [_enlarged(f, k) for f in found] if k > 1 else found
        if face_box is not None:
            chosen = pick_face_box(faces, face_box)
        else:
            photo = self.photo_faces(faces, rgb.shape[1] * k, rgb.shape[0] * k)
            chosen = photo.subject
            if enroll and photo.choice.ambiguous:
                self.refuse_ambiguous(photo)
        if enroll:
            self.check_face(faces[chosen])
        aligned = align(rgb, found[chosen], self.template)  # in rgb's pixels
        timings["align"] = (time.perf_counter() - t2) * 1e3
        return FaceSample(aligned, faces[chosen], len(faces), timings)

    def extract_all(self, data: bytes, limit: int) -> tuple[PhotoFaces, list[np.ndarray]]:
        """Every face (the `limit` largest), each aligned, and the subject."""
        rgb, k, found, _ = self.locate(data)
        faces = [_enlarged(f, k) for f in found] if k > 1 else found
        photo = self.photo_faces(faces, rgb.shape[1] * k, rgb.shape[0] * k)
        return photo, [align(rgb, f, self.template) for f in found[:limit]]

    def refuse_ambiguous(self, photo: PhotoFaces) -> None:
        c = photo.choice
        a, b = photo.faces[c.index], photo.faces[c.runner_up]
        ratio = max(a.size, b.size) / min(a.size, b.size)
        raise errors.MultipleFaces(
            f"{len(photo.faces)} faces were found and the two likeliest subjects ({a.size:.0f} and "
            f"{b.size:.0f} px: size ratio {ratio:.2f}, below {self.rules.dominance_ratio}) are "
            "alike in size, closeness to the centre, edge cut and detection confidence; send "
            "face_box with the box of the face to enroll (see `candidates`), or a photo of one person",
            faces_detected=len(photo.faces), comparable_faces=2,
            face_sizes=[round(f.size, 1) for f in photo.faces[:10]], size_ratio=round(ratio, 3),
            required_ratio=self.rules.dominance_ratio,
            candidates=[face_summary(f, s) for f, s in zip(photo.faces[:MAX_CANDIDATES],
                                                          c.scores[:MAX_CANDIDATES])])

    def check_face(self, main: DetectedFace) -> None:
        """Raise the refusal for a face that must not be enrolled (too small, unclear)."""
        rules = self.rules
        if main.size < rules.min_face_size:
            raise errors.FaceTooSmall(
                f"The face is {main.size:.0f} px; enrolling needs at least {rules.min_face_size} px",
                face_size=round(main.size, 1), min_face_size=rules.min_face_size, box=_box(main))
        if main.score < rules.min_score:
            raise errors.LowQuality(
                f"Face detection confidence {main.score:.2f} is below {rules.min_score}; "
                "send a sharper, frontal, well-lit photo",
                score=round(main.score, 3), min_score=rules.min_score, box=_box(main))
