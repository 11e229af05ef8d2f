"""The evaluation harness: scorers, 1-NN and chance baselines on toy cases."""

from __future__ import annotations

import numpy as np

from model.omniglot import data as om
from model.omniglot import evaluate as ev
from model.omniglot import tasks as oneshot


def _toy_split(n_chars=6, n_drawers=2, noise=0.05, seed=0):
    """Characters are distinct random blobs; drawers add a little noise."""
    rng = np.random.default_rng(seed)
    protos = rng.random((n_chars, 1, 8, 8))
    imgs = np.clip(protos + noise * rng.standard_normal((n_chars, n_drawers, 8, 8)), 0, 1)
    return om.Split("toy", (imgs * 255).astype(np.uint8), ("a",), np.zeros(n_chars, np.int16),
                    np.arange(n_chars), tuple(range(n_drawers)))


def test_one_nn_on_raw_pixels_solves_a_toy_case():
    split = _toy_split()
    tasks = oneshot.make_tasks(split, 5, 50, within_alphabet=True, seed=0)
    f = ev.raw_pixels(split.flat_images())
    assert ev.oneshot_accuracy(f, f, tasks, ev.negative_l2_scorer) == 1.0


def test_one_nn_picks_the_nearest_not_the_first():
    q = np.array([[0.0, 0.0]])
    s = np.array([[[5.0, 0.0], [0.1, 0.0], [0.0, 3.0]]])
    assert np.argmax(ev.negative_l2_scorer(q, s), axis=1)[0] == 1


def test_chance_is_near_one_over_n():
    split = _toy_split(n_chars=30, n_drawers=2)
    tasks = oneshot.make_tasks(split, 10, 3000, within_alphabet=False, seed=0)
    f = ev.raw_pixels(split.flat_images())
    acc = ev.oneshot_accuracy(f, f, tasks, ev.random_scorer(0))
    assert abs(acc - 0.1) < 0.02


def test_prototype_scorer_ignores_a_shared_offset():
    # two classes that differ only in a small direction, on top of a large shared vector:
    # centring on the support mean makes the class difference decide
    s = np.array([[[100.0, 0.0, 1.0], [100.0, 0.0, -1.0]]])
    q = np.array([[100.0, 5.0, 0.2]])  # off in an irrelevant direction, slightly towards class 0
    assert np.argmax(ev.prototype_scorer(q, s), axis=1)[0] == 0


def test_lake_accuracy_with_raw_pixels_on_identical_images():
    rng = np.random.default_rng(0)
    train = (rng.random((20, 6, 6)) * 255).astype(np.uint8)
    answer = rng.permutation(20)
    run = oneshot.LakeRun("r", train, train[answer], answer)
    res = ev.lake_accuracy([run], ev.raw_pixels, ev.negative_l2_scorer)
    assert res["percent_correct"] == 100.0
