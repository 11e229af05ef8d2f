"""The evaluation harness: scorers, 1-NN and chance baselines on toy cases."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_transductive_assignment_fixes_a_shared_nearest_image_and_stays_separate():
    # items 0 and 1 both have training image 0 as nearest; item 1 is really class 1.
    # Lake's item-by-item scoring gets item 1 wrong; the one-to-one assignment cannot.
    train = np.zeros((3, 4, 4), np.uint8)
    run = oneshot.LakeRun("r", train, train, np.array([0, 1, 2]))
    cost = np.array([[0.0, 5.0, 5.0],
                     [1.0, 2.0, 5.0],
                     [5.0, 5.0, 0.0]])
    assert oneshot.score_lake_runs([cost], [run])["percent_correct"] == pytest.approx(100 * 2 / 3)
    assert ev.transductive_lake([cost], [run])["percent_correct"] == 100.0


def test_evaluate_method_reports_transductive_lake_beside_not_instead():
    split = _toy_split(n_chars=20, n_drawers=2)
    imgs = split.images[:, 0]
    answer = np.random.default_rng(1).permutation(20)
    run = oneshot.LakeRun("r", imgs, split.images[answer, 1], answer)
    data = ev.EvalData(splits={"test": split}, suite=ev.TaskSuite({}), runs=[run],
                       val_pairs=None, test_pairs=None)
    out = ev.evaluate_method("1nn", data, ev.raw_pixels, ev.negative_l2_scorer, distance=None)
    assert out["lake"]["percent_correct"] == 100.0 and out["lake_transductive"]["percent_correct"] == 100.0
    assert set(out) >= {"lake", "lake_transductive"}


def test_ensemble_averages_its_members_scores():
    rng = np.random.default_rng(0)
    images = (rng.random((6, 5, 5)) * 255).astype(np.uint8)
    a = ev.Method("a", ev.raw_pixels, ev.negative_l2_scorer)
    b = ev.Method("b", lambda im: 2 * ev.raw_pixels(im), ev.negative_l2_scorer)
    ens = ev.ensemble_method([a, b], "a+b")
    f = ens.featurize(images)
    assert f.shape == (6, 50)
    q, s = f[[0]], f[None, [1, 2, 3]]
    fa, fb = a.featurize(images), b.featurize(images)
    expected = (ev.negative_l2_scorer(fa[[0]], fa[None, [1, 2, 3]])
                + ev.negative_l2_scorer(fb[[0]], fb[None, [1, 2, 3]])) / 2
    np.testing.assert_allclose(ens.score(q, s), expected, rtol=1e-6)


def test_test_time_augmentation_averages_distorted_copies():
    import keras

    from model.omniglot.config import resolve
    from model.omniglot.nets import build_from_config

    cfg = resolve("smoke", ["loss=triplet"])
    keras.utils.set_random_seed(0)
    net = build_from_config(cfg)
    images = (np.random.default_rng(0).random((4, cfg.image_size, cfg.image_size)) > 0.9).astype(np.uint8) * 255
    plain = ev.model_method(net, cfg, "pairwise")
    tta = ev.model_method(net, cfg, "pairwise", tta=3)
    assert tta.name == plain.name + "+tta3"
    f, g = plain.featurize(images), tta.featurize(images)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-5)  # renormalised
    assert not np.allclose(f, g)  # the copies changed the features
    np.testing.assert_allclose(tta.featurize(images), g, rtol=1e-6)  # fixed seed: the same copies each time


def test_plot_labels_tell_two_runs_of_one_preset_apart(tmp_path):
    curve = {"random": {"2": 0.9, "20": 0.5}, "within_alphabet": {"2": 0.8, "20": 0.4}}
    a = {"method": "cpu/triplet/nearest", "run_dir": "runs/omniglot/cpu-triplet", "scorer": "pairwise", **curve}
    b = {**a, "run_dir": "runs/omniglot/cpu-triplet-rot"}
    base = {"method": "modified Hausdorff distance (MHD)", **curve}
    labels = [ev._plot_label(r) for r in (a, b, base)]
    assert labels == ["cpu-triplet (pairwise)", "cpu-triplet-rot (pairwise)", "modified Hausdorff distance (MHD)"]
    ev.plot_accuracy_vs_n([a, b, base], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
