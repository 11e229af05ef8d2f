"""Template pooling and the per-template-size thresholds (pure maths)."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain.templates import TemplateCalibration, pool
from app.services.threshold import ThresholdPolicy
from app.domain.verification import Candidate, best_match


def test_pool_is_the_normalised_mean_of_normalised_rows():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(3, 8))
    got = pool(e * np.array([[2.0], [0.5], [1.0]]))  # row scale does not matter
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    want = unit.mean(0) / np.linalg.norm(unit.mean(0))
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-6)
    assert np.allclose(pool(e[:1]), unit[0], atol=1e-6)  # a template of one is that photo
    assert np.allclose(pool(np.stack([unit[0], -unit[0]])), unit[0])  # no mean direction: the first
    with pytest.raises(ValueError):
        pool(np.zeros((0, 8)))


def calibration() -> TemplateCalibration:
    return TemplateCalibration((1e-4, 1e-3, 1e-2), {1: (0.22, 0.25, 0.30), 3: (0.18, 0.21, 0.27)},
                               {1: 10**5, 3: 10**5})


def test_the_threshold_moves_to_the_same_impostor_rate():
    cal = calibration()
    assert cal.threshold(0.25, 1) == 0.25
    assert cal.threshold(0.25, 3) == pytest.approx(0.21)  # F_1(0.25) = 1e-3 = F_3(0.21)
    assert cal.threshold(0.275, 3) == pytest.approx(0.24)  # linear between shipped rates
    assert cal.threshold(0.20, 3) == pytest.approx(0.16)  # below them: the nearest shift
    assert cal.threshold(0.25, 7) == cal.threshold(0.25, 3)  # above the largest size: its map
    back = TemplateCalibration.from_dict(cal.to_dict())
    assert back == cal
    with pytest.raises(ValueError):
        TemplateCalibration.from_dict({"rates": [0.1, 0.2], "distances": {"2": [0.1, 0.2]}})  # no k = 1
    with pytest.raises(ValueError):
        TemplateCalibration.from_dict({"rates": [0.1, 0.2], "distances": {"1": [0.3, 0.2]}})


def test_policy_and_identify_use_each_candidates_own_threshold():
    policy = ThresholdPolicy(0.25, "test", "test", templates=calibration())
    assert policy.verify_threshold(1) == 0.25 and policy.verify_threshold(3) == pytest.approx(0.21)
    assert ThresholdPolicy(0.25, "test", "test").verify_threshold(3) == 0.25  # no calibration shipped
    near_big = Candidate("big", None, 0.22, template_size=3)  # nearer, but outside its own threshold
    far_one = Candidate("one", None, 0.24, template_size=1)
    limits = [policy.for_template(0.25, c.template_size) for c in (near_big, far_one)]
    assert best_match([near_big, far_one], limits) == far_one
    assert best_match([near_big], [limits[0]]) is None
    assert best_match([near_big, far_one], 0.25) == near_big  # one threshold: the nearest
