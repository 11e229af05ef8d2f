import numpy as np
import pytest

from app.vision.align import AlignmentTemplate, align_face, similarity_transform

# the ArcFace 112x112 template (image-left eye first), as an embedder other than FaceNet brings it
ARCFACE_112 = AlignmentTemplate(np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74],
                                          [41.55, 92.37], [70.73, 92.20]]), 112)
FACENET_LIKE_160 = AlignmentTemplate(np.array([[50.6, 66.9], [108.4, 65.7], [79.7, 92.5],
                                               [54.9, 110.8], [106.2, 109.9]]), 160)


def test_similarity_transform_recovers_a_known_map():
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot, atol=1e-9)
    assert np.allclose(m[:, 2], shift, atol=1e-9)


@pytest.mark.parametrize("template", [FACENET_LIKE_160, ARCFACE_112], ids=["160", "arcface112"])
def test_align_puts_landmarks_on_the_artefacts_template(template):
    # draw 5 dots where the "face" landmarks are, rotated and scaled, then align
    rgb = np.zeros((400, 400, 3), np.uint8)
    pts = template.points * (160 / template.size)
    m = similarity_transform(pts, pts * 1.6 @ np.array([[0.96, -0.28], [0.28, 0.96]]).T + 60)
    marks = pts @ m[:, :2].T + m[:, 2]
    for x, y in marks:
        rgb[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
    face = align_face(rgb, marks, template)
    assert face.shape == (template.size, template.size, 3)
    for x, y in template.points:
        assert face[int(round(y)), int(round(x))].max() > 100
    assert face.mean() < 40  # only the dots are bright: nothing else was mapped in


def test_template_round_trips_through_metadata():
    back = AlignmentTemplate.from_metadata(ARCFACE_112.to_metadata())
    assert back.size == 112 and np.allclose(back.points, ARCFACE_112.points, atol=0.01)


@pytest.mark.parametrize("spec", [
    {"size": 160, "template": [[1, 2]] * 4},  # 4 points
    {"size": 112, "template": [[50.6, 66.9], [108.4, 65.7], [79.7, 92.5], [54.9, 110.8], [106.2, 119.9]]},
    {"size": 4, "template": [[1, 1]] * 5},
])
def test_malformed_templates_are_refused(spec):
    with pytest.raises(ValueError):
        AlignmentTemplate.from_metadata(spec)
