"""Which face a photo is of, chosen as a person would: the large, central, whole, clear face.

Each detected face gets one subject score from four cues, each measured in the photo:

* size: ``log(size / largest size)`` (0 for the largest face, negative for smaller ones);
* centre: how far the face's centre lies from the photo's centre, ``hypot(dx, dy / 2)`` with
  dx, dy in half-widths and half-heights (0 at the centre, 1 at the middle of a side edge;
  vertical offsets count half: a portrait's face sits above the centre);
* cut: the share of the face's box outside the frame, or, when larger, how close the box comes
  to an edge (1 touching it, 0 at ``EDGE_GAP`` of the face's size or further): YuNet often
  boxes only the visible part of a face the frame cuts;
* confidence: the detector's score.

``score = log(size/largest) - CENTRE_WEIGHT * centre - CUT_WEIGHT * cut + CONFIDENCE_WEIGHT * confidence``

The face with the highest score is the subject. Enroll refuses the photo (``multiple_faces``)
only when the runner-up cannot be told apart from it on any cue: size within the dominance
ratio, centre offsets within ``CENTRE_TOLERANCE``, cut shares within ``CUT_TOLERANCE`` and
scores within ``CONFIDENCE_TOLERANCE``. The weights and tolerances were calibrated on CelebA
photos with two or more faces and on composites of CelebA and Yale photos, validation
identities only (bench/subject_choice.py; the table is in docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.vision.detect import DetectedFace

EDGE_GAP = 0.1
# bench/subject_choice.py --grid: on validation identities the lowest cost (5 per wrong face
# enrolled, 1 per refusal, 0.5 per wrong face for verify) was centre 1 with cut and confidence 0
# (105.5); these weights, which let every cue count, cost 107 there (one refusal and one verify
# choice more) and less on the test identities (93.5 against 94.5)
CENTRE_WEIGHT = 1.0
CUT_WEIGHT = 1.0
CONFIDENCE_WEIGHT = 1.0
CENTRE_TOLERANCE = 0.15
CUT_TOLERANCE = 0.1
CONFIDENCE_TOLERANCE = 0.1


@dataclass(frozen=True)
class SubjectWeights:
    centre: float = CENTRE_WEIGHT
    cut: float = CUT_WEIGHT
    confidence: float = CONFIDENCE_WEIGHT
    centre_tolerance: float = CENTRE_TOLERANCE
    cut_tolerance: float = CUT_TOLERANCE
    confidence_tolerance: float = CONFIDENCE_TOLERANCE


@dataclass(frozen=True)
class Cues:
    size: float  # px, the shorter box side
    centre: float  # offset from the photo's centre (0 centre, 1 middle of a side edge)
    cut: float  # share of the box outside the frame
    confidence: float


@dataclass(frozen=True)
class SubjectChoice:
    index: int  # into the faces, largest first
    scores: list[float]  # subject score per face
    cues: list[Cues]
    runner_up: int | None  # the next best face, if any
    ambiguous: bool  # the runner-up cannot be told apart from the subject on any cue


def cues(face: DetectedFace, width: int, height: int) -> Cues:
    x, y, w, h = face.box
    dx = (x + w / 2 - width / 2) / (width / 2)
    dy = (y + h / 2 - height / 2) / (height / 2)
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    outside = 1.0 - inside_w * inside_h / (w * h)
    # YuNet often boxes only the visible part of a face the frame cuts: a box within a tenth of
    # the face's size of an edge counts as cut too, fully when it touches the edge
    gap = min(x, y, width - (x + w), height - (y + h))
    near = 1.0 - min(1.0, max(0.0, gap / (EDGE_GAP * min(w, h))))
    return Cues(face.size, math.hypot(dx, dy / 2), max(outside, near), face.score)


def subject_score(c: Cues, largest: float, weights: SubjectWeights) -> float:
    return (math.log(c.size / largest) - weights.centre * c.centre - weights.cut * c.cut
            + weights.confidence * c.confidence)


def apart(a: Cues, b: Cues, ratio: float, weights: SubjectWeights) -> bool:
    """Whether a person can tell the two faces apart on at least one cue."""
    big, small = max(a.size, b.size), min(a.size, b.size)
    return (big >= ratio * small or abs(a.centre - b.centre) > weights.centre_tolerance
            or abs(a.cut - b.cut) > weights.cut_tolerance
            or abs(a.confidence - b.confidence) > weights.confidence_tolerance)


def choose_subject(faces: list[DetectedFace], width: int, height: int, ratio: float,
                   weights: SubjectWeights = SubjectWeights()) -> SubjectChoice:
    """The subject among `faces` (largest first, at least one) of a width x height photo;
    `ratio` is the size ratio below which two faces count as the same size."""
    measured = [cues(f, width, height) for f in faces]
    largest = max(c.size for c in measured)
    scores = [subject_score(c, largest, weights) for c in measured]
    order = sorted(range(len(faces)), key=lambda i: (-scores[i], i))
    best = order[0]
    second = order[1] if len(order) > 1 else None
    ambiguous = second is not None and not apart(measured[best], measured[second], ratio, weights)
    return SubjectChoice(best, scores, measured, second, ambiguous)


def largest_rule(faces: list[DetectedFace], ratio: float) -> tuple[int, bool]:
    """The rule before the subject score, for comparison (bench/subject_choice.py): of the
    faces within `ratio` of the largest one's size the most confident; enroll refused when any
    other face is within `ratio` of the largest. Returns (index, refused)."""
    comparable = [i for i, f in enumerate(faces) if faces[0].size < ratio * f.size]
    return max(comparable, key=lambda i: faces[i].score), len(comparable) > 1
