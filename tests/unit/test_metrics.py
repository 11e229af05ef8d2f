import numpy as np
import pytest

from model.common import metrics


def test_threshold_tuning_on_a_constructed_example():
    # same pairs at 0.1..0.4, different at 0.6..0.9: any threshold in (0.4, 0.6) is perfect
    same = np.r_[np.ones(4, bool), np.zeros(4, bool)]
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    t, acc = metrics.best_accuracy_threshold(d, same)
    assert acc == 1.0 and 0.4 < t < 0.6
    assert metrics.roc_auc(d, same) == 1.0
    # one different pair at 0.35 costs one error whichever way the threshold goes
    d2 = d.copy()
    d2[4] = 0.35
    t2, acc2 = metrics.best_accuracy_threshold(d2, same)
    assert acc2 == pytest.approx(7 / 8)


def test_tar_at_far():
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    d = np.r_[rng.uniform(0, 1, 1000), rng.uniform(0.5, 1.5, 1000)]
    t = metrics.threshold_at_far(d, same, 1e-3)
    assert (d[~same] <= t).mean() <= 1e-3
    assert metrics.tar_at_far(d, same, 1e-3) == pytest.approx((d[same] <= t).mean())


def test_auc_is_probability_of_correct_order():
    rng = np.random.default_rng(1)
    d_same, d_diff = rng.normal(0, 1, 300), rng.normal(1, 1, 300)
    d = np.r_[d_same, d_diff]
    same = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    brute = (d_same[:, None] < d_diff[None, :]).mean()
    assert metrics.roc_auc(d, same) == pytest.approx(brute, abs=1e-9)
