"""The subject rule's arithmetic (app/vision/subject.py) on detector boxes placed by hand; the
real-photo behaviour is in tests/api/test_choosing_faces.py and bench/subject_choice.py."""

from __future__ import annotations

import math

import numpy as np

from app.vision.detect import DetectedFace, merge_faces
from app.vision.subject import SubjectWeights, choose_subject, cues, largest_rule

W, H = 640, 480


def face(cx: float, cy: float, size: float, score: float = 0.92) -> DetectedFace:
    box = (cx - size / 2, cy - size * 0.65, size, size * 1.3)
    return DetectedFace(box, score, np.tile([[cx, cy]], (5, 1)).astype(float))


def test_cues_are_measured_as_documented():
    c = cues(face(320, 240, 100), W, H)
    assert c.size == 100 and math.isclose(c.centre, 0.0, abs_tol=1e-9) and c.cut == 0.0
    side = cues(face(640 - 50, 240, 100), W, H)  # touches the right edge
    assert math.isclose(side.centre, (590 - 320) / 320) and side.cut == 1.0
    half_out = cues(DetectedFace((590.0, 200.0, 100.0, 100.0), 0.9, np.zeros((5, 2))), W, H)
    assert math.isclose(half_out.cut, 1.0)
    top = cues(face(320, 240 - 120, 100), W, H)
    assert math.isclose(top.centre, 120 / 240 / 2)  # vertical offsets count half


def test_a_centred_face_beats_a_same_size_face_at_the_side_and_enroll_need_not_refuse():
    faces = [face(560, 240, 100), face(320, 240, 96)]  # the side face is the larger
    choice = choose_subject(faces, W, H, 1.25)
    assert choice.index == 1 and not choice.ambiguous
    assert largest_rule(faces, 1.25) == (0, True)  # the rule before: refused


def test_two_faces_alike_on_every_cue_are_ambiguous():
    faces = [face(220, 240, 100, 0.93), face(420, 240, 98, 0.91)]
    assert choose_subject(faces, W, H, 1.25).ambiguous


def test_each_cue_alone_tells_two_faces_apart():
    base = [face(220, 240, 100, 0.93), face(420, 240, 100, 0.93)]
    assert choose_subject(base, W, H, 1.25).ambiguous
    by_size = [face(220, 240, 130, 0.93), face(420, 240, 100, 0.93)]
    by_centre = [face(300, 240, 100, 0.93), face(520, 240, 100, 0.93)]
    by_score = [face(220, 240, 100, 0.95), face(420, 240, 100, 0.80)]
    for faces in (by_size, by_centre, by_score):
        choice = choose_subject(faces, W, H, 1.25)
        assert choice.index == 0 and not choice.ambiguous, faces


def test_a_face_cut_by_the_frame_loses_to_a_whole_one_at_the_same_distance():
    faces = [face(640 - 48, 240, 100), face(48 + 40, 240, 100)]  # the first touches the edge
    choice = choose_subject(faces, W, H, 1.25, SubjectWeights(centre=0.0))
    assert choice.index == 1 and choice.cues[0].cut == 1.0 and choice.cues[1].cut == 0.0


def test_merge_keeps_one_detection_per_face_largest_first():
    a = DetectedFace((100.0, 100.0, 80.0, 100.0), 0.80, np.zeros((5, 2)))
    a2 = DetectedFace((104.0, 96.0, 84.0, 104.0), 0.93, np.zeros((5, 2)))  # the same face again
    part = DetectedFace((110.0, 150.0, 40.0, 40.0), 0.95, np.zeros((5, 2)))  # inside a
    b = DetectedFace((300.0, 100.0, 90.0, 120.0), 0.90, np.zeros((5, 2)))
    merged = merge_faces([a, b, part, a2])
    # b (90 px), then one of a's group: its most confident detection (here the box inside it)
    assert [f.score for f in merged] == [0.90, 0.95]
