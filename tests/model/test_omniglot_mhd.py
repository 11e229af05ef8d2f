"""The modified Hausdorff distance baseline (Lake et al. 2015) on constructed cases and Lake's runs."""

from __future__ import annotations

import numpy as np
import pytest

from model.common import paths
from model.omniglot import evaluate as ev
from model.omniglot import tasks as oneshot
from model.omniglot.mhd import PointClouds, ink_points, modified_hausdorff
from tests.conftest import require_data


def _image(pixels, size=9):
    im = np.zeros((size, size), np.uint8)
    for r, c in pixels:
        im[r, c] = 255
    return im


def test_ink_points_are_centred_on_their_mean():
    pts = ink_points(_image([(1, 1), (1, 3), (5, 2)]))
    np.testing.assert_allclose(pts.mean(axis=0), 0.0, atol=1e-12)
    assert pts.shape == (3, 2)


def test_mhd_of_a_horizontal_and_a_vertical_bar_is_two_thirds():
    # centred: (0,-1) (0,0) (0,1) against (-1,0) (0,0) (1,0): each end is 1 from the
    # other bar's centre, the centres coincide, so both directed means are 2/3
    a = ink_points(_image([(4, 3), (4, 4), (4, 5)]))
    b = ink_points(_image([(3, 4), (4, 4), (5, 4)]))
    assert modified_hausdorff(a, b) == pytest.approx(2 / 3)


def test_mhd_takes_the_larger_directed_mean():
    # a 3x3 square against its centre pixel: square -> centre averages (4 * 1 + 4 * sqrt 2) / 9,
    # centre -> square is 0; the MHD is the maximum, not the mean of the two
    square = ink_points(_image([(r, c) for r in (3, 4, 5) for c in (3, 4, 5)]))
    dot = ink_points(_image([(4, 4)]))
    expected = (4 + 4 * np.sqrt(2)) / 9
    assert modified_hausdorff(square, dot) == pytest.approx(expected)
    assert modified_hausdorff(dot, square) == pytest.approx(expected)


def test_mhd_ignores_translation_but_not_shape():
    shape = [(1, 1), (1, 2), (2, 2), (3, 2)]
    moved = [(r + 4, c + 3) for r, c in shape]
    assert modified_hausdorff(ink_points(_image(shape)), ink_points(_image(moved))) == pytest.approx(0.0)
    other = [(1, 1), (2, 1), (3, 1), (3, 2)]
    assert modified_hausdorff(ink_points(_image(shape)), ink_points(_image(other))) > 0.3


def test_point_clouds_match_the_brute_force_distance_and_score_in_the_harness():
    rng = np.random.default_rng(0)
    images = (rng.random((5, 12, 12)) > 0.8).astype(np.uint8) * 255
    clouds = PointClouds()
    ids = clouds.featurize(images)
    for i in range(5):
        for j in range(5):
            brute = modified_hausdorff(ink_points(images[i]), ink_points(images[j]))
            assert clouds.distance(i, j) == pytest.approx(brute)
    scores = clouds.score(ids[[2]], ids[None, [0, 1, 2, 3]])
    assert np.argmax(scores, axis=1)[0] == 2 and scores[0, 2] == 0.0  # itself, at distance 0


def test_empty_image_is_a_clear_error():
    with pytest.raises(ValueError, match="no ink"):
        ink_points(np.zeros((5, 5), np.uint8))


@pytest.mark.slow
def test_mhd_on_lakes_runs_reproduces_lakes_38_8_percent_error():
    """Lake's demo_classification prints an average error of 38.8 % for this baseline."""
    require_data(paths.data_dir() / "omniglot" / "all_runs.zip")
    clouds = PointClouds()
    res = ev.lake_accuracy(oneshot.load_lake_runs(105), clouds.featurize, clouds.score)
    assert res["mean_error"] == pytest.approx(38.75)  # 155 of 400 wrong; Lake rounds to 38.8
    assert res["percent_correct"] == pytest.approx(61.25)
