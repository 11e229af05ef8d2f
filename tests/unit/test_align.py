import numpy as np

from app.vision.align import TEMPLATE_160, align_face, similarity_transform


def test_similarity_transform_recovers_a_known_map():
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot, atol=1e-9)
    assert np.allclose(m[:, 2], shift, atol=1e-9)


def test_align_puts_landmarks_on_the_template():
    # draw 5 dots where the "face" landmarks are, rotated and scaled, then align
    rgb = np.zeros((400, 400, 3), np.uint8)
    m = similarity_transform(TEMPLATE_160, TEMPLATE_160 * 1.6 @ np.array([[0.96, -0.28], [0.28, 0.96]]).T + 60)
    marks = TEMPLATE_160 @ m[:, :2].T + m[:, 2]
    for x, y in marks:
        rgb[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
    face = align_face(rgb, marks)
    assert face.shape == (160, 160, 3)
    for x, y in TEMPLATE_160:
        assert face[int(round(y)), int(round(x))].max() > 100
