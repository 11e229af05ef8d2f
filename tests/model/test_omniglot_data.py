"""Omniglot data: splits, pair sampling, affine distortions, N-way tasks, Lake's runs."""

from __future__ import annotations

import numpy as np
import pytest

from model.common import paths
from model.omniglot import augment
from model.omniglot import data as om
from model.omniglot import tasks as oneshot
from tests.conftest import require_data


def test_sets_have_the_documented_size(omniglot_28):
    bg, ev = omniglot_28
    assert bg.images.shape == (964, 20, 28, 28) and len(bg.alphabets) == 30
    assert ev.images.shape == (659, 20, 28, 28) and len(ev.alphabets) == 20
    assert bg.images.dtype == np.uint8 and bg.images.max() == 255


def test_splits_share_no_alphabet_and_no_drawer(splits_28):
    tr, va, te = splits_28["train"], splits_28["validation"], splits_28["test"]
    assert len(tr.alphabets) == 30 and len(va.alphabets) == 10 and len(te.alphabets) == 10
    assert not set(tr.alphabets) & set(va.alphabets)
    assert not set(tr.alphabets) & set(te.alphabets)
    assert not set(va.alphabets) & set(te.alphabets)
    assert len(tr.drawers) == 12 and len(va.drawers) == 4 and len(te.drawers) == 4
    assert not set(tr.drawers) & set(va.drawers) | set(tr.drawers) & set(te.drawers)
    assert not set(va.drawers) & set(te.drawers)
    # characters: the global ids of the three splits are disjoint too
    ids = [set(s.char_ids.tolist()) for s in (tr, va, te)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # Lake's runs test on exactly our test alphabets, never on a validation alphabet
    assert set(te.alphabets) == set(om.LAKE_RUN_ALPHABETS)


def test_pair_sampler_is_balanced_and_stays_inside_its_split(splits_28):
    split = splits_28["validation"]
    rng = np.random.default_rng(0)
    left, right, same = om.sample_pairs(split, 5001, rng, within_alphabet_negatives=0.5)
    assert same.sum() == 2500 and (~same).sum() == 2501
    n_flat = split.n_chars * split.n_drawers
    assert left.max() < n_flat and right.max() < n_flat
    cl, cr = om.pair_chars(split, left), om.pair_chars(split, right)
    assert np.all((cl == cr) == same)  # label = "same character", nothing else
    dl, dr = left % split.n_drawers, right % split.n_drawers
    assert np.all(dl[same] != dr[same])  # a same pair is two different drawings
    diff_within = split.char_alphabet[cl[~same]] == split.char_alphabet[cr[~same]]
    assert 0.45 < diff_within.mean() < 0.6  # half the negatives are within-alphabet
    # not trivially ordered: labels are shuffled
    assert 0.3 < same[:100].mean() < 0.7


def test_affine_parameters_stay_in_the_paper_ranges():
    p = augment.sample_affine_params(20000, np.random.default_rng(1))
    theta, rho, s, t = p[:, 0], p[:, 1:3], p[:, 3:5], p[:, 5:7]
    assert np.all(np.abs(theta) <= 10) and np.all(np.abs(rho) <= 0.3)
    assert np.all((s >= 0.8) & (s <= 1.2)) and np.all(np.abs(t) <= 2)
    identity = np.array([0, 0, 0, 1, 1, 0, 0])
    active = (p != identity).mean(axis=0)
    assert np.all(np.abs(active - 0.5) < 0.02)  # each component on with probability 0.5
    assert np.abs(theta).max() > 9.5 and s.min() < 0.82 and s.max() > 1.18


def test_warp_identity_and_translation():
    img = np.zeros((1, 105, 105), np.float32)
    img[0, 40:60, 30:50] = 1.0
    ident = augment.affine_matrices(np.array([[0, 0, 0, 1, 1, 0, 0.0]]), 105)
    np.testing.assert_allclose(augment.warp_affine(img, ident), img, atol=1e-6)
    shifted = augment.warp_affine(img, augment.affine_matrices(np.array([[0, 0, 0, 1, 1, 2.0, -2.0]]), 105))
    ys, xs = np.nonzero(shifted[0] > 0.5)
    assert xs.min() == 32 and ys.min() == 38  # +2 px in x, -2 px in y
    # rotation keeps the mass (up to interpolation) and the image centre
    rot = augment.warp_affine(img, augment.affine_matrices(np.array([[10.0, 0, 0, 1, 1, 0, 0]]), 105))
    assert abs(rot.sum() - img.sum()) / img.sum() < 0.02


@pytest.mark.parametrize("within", [False, True])
@pytest.mark.parametrize("n_way", [2, 5, 20])
def test_nway_tasks(splits_28, n_way, within):
    split = splits_28["test"]
    tasks = oneshot.make_tasks(split, n_way, 200, within, seed=3)
    again = oneshot.make_tasks(split, n_way, 200, within, seed=3)
    np.testing.assert_array_equal(tasks.support, again.support)  # fixed, seeded task sets
    nd = split.n_drawers
    for q, sup, ans in zip(tasks.query, tasks.support, tasks.answer):
        classes = sup // nd
        assert len(set(classes.tolist())) == n_way  # distinct classes
        assert np.sum(classes == q // nd) == 1  # right answer present exactly once
        assert classes[ans] == q // nd
        assert len(set((sup % nd).tolist())) == 1 and q % nd != sup[0] % nd  # 2 drawers
        if within:
            assert len(set(split.char_alphabet[classes].tolist())) == 1
    assert len(set(tasks.answer.tolist())) > 1  # answer position is random


def test_lake_scoring_on_a_constructed_case():
    rng = np.random.default_rng(0)
    answer = rng.permutation(20)
    run = oneshot.LakeRun("runXX", np.zeros((20, 4, 4), np.uint8), np.zeros((20, 4, 4), np.uint8), answer)
    cost = np.ones((20, 20))
    cost[np.arange(20), answer] = 0.0  # all right ...
    cost[:3] = 0.5
    cost[0, (answer[0] + 1) % 20] = 0.0  # ... except item 0 (wrong class is cheapest)
    cost[1, answer[1]] = 0.0  # item 1 right, item 2 all tied -> argmin takes class 0
    right2 = answer[2] == 0
    perfect = oneshot.score_lake_runs([np.where(np.arange(20)[None] == answer[:, None], 0.0, 1.0)], [run])
    assert perfect["percent_correct"] == 100.0 and perfect["trials"] == 20
    res = oneshot.score_lake_runs([cost, cost], [run, run])
    wrong = 1 + (0 if right2 else 1)
    assert res["per_run_error"] == [100 * wrong / 20] * 2
    assert res["percent_correct"] == pytest.approx(100 - 100 * wrong / 20)


def test_lake_runs_load_and_match_the_test_alphabets():
    require_data(paths.data_dir() / "omniglot" / "all_runs.zip")
    runs = oneshot.load_lake_runs(28)
    assert len(runs) == 20 and all(r.train.shape == (20, 28, 28) for r in runs)
    assert sum(len(r.answer) for r in runs) == 400
    for r in runs:  # every training class is the answer of exactly one test item
        assert sorted(r.answer.tolist()) == list(range(20))

    # where each of the 800 run images comes from, by exact pixel match against the evaluation set
    evaluation = om.load_set("evaluation", om.ORIGINAL_SIZE)
    provenance = oneshot.lake_run_provenance(evaluation, oneshot.load_lake_runs(om.ORIGINAL_SIZE))
    found = [alphabet for images in provenance.values() for alphabet, _ in images]
    assert len(found) == 800 and None not in found  # every run image is an evaluation-set image
    assert set(found) == set(om.LAKE_RUN_ALPHABETS)  # the test split's alphabets, all ten of them
    assert not set(found) & set(om.VALIDATION_ALPHABETS)  # early stopping never sees them


def test_within_alphabet_sampler_draws_every_negative_from_the_anchors_alphabet(splits_28):
    split = splits_28["train"]
    left, right, same = om.sample_pairs(split, 4000, np.random.default_rng(2), within_alphabet_negatives=1.0)
    cl, cr = om.pair_chars(split, left[~same]), om.pair_chars(split, right[~same])
    assert np.all(cl != cr)  # still a different character
    assert np.all(split.char_alphabet[cl] == split.char_alphabet[cr])
    # and with 0.0, negatives cross alphabets about as often as random pairs of characters do
    left, right, same = om.sample_pairs(split, 4000, np.random.default_rng(2), within_alphabet_negatives=0.0)
    within = split.char_alphabet[om.pair_chars(split, left[~same])] == split.char_alphabet[om.pair_chars(split, right[~same])]
    assert within.mean() < 0.1


def test_rotation_classes_are_turned_copies_of_training_characters(splits_28):
    train = splits_28["train"]
    rot = om.with_transformed_classes(train, "rot")
    n = train.n_chars
    assert rot.n_chars == 4 * n and rot.n_drawers == train.n_drawers
    for k in range(4):
        np.testing.assert_array_equal(rot.images[k * n + 5, 3], np.rot90(train.images[5, 3], k))
        assert rot.alphabets[rot.char_alphabet[k * n + 5]].startswith(train.alphabets[train.char_alphabet[5]])
    flip = om.with_transformed_classes(train, "rot+flip")
    assert flip.n_chars == 8 * n and len(set(flip.alphabets)) == 8 * len(train.alphabets)
    np.testing.assert_array_equal(flip.images[4 * n + 5, 0], train.images[5, 0][:, ::-1])
    assert om.with_transformed_classes(train, "none") is train


def test_rotation_classes_never_leak_evaluation_characters(omniglot_28, splits_28):
    _, evaluation = omniglot_28
    rot = om.with_transformed_classes(splits_28["train"], "rot+flip")
    # ids and alphabets all come from the background set
    assert set(rot.char_ids.tolist()) == set(splits_28["train"].char_ids.tolist())
    assert max(rot.char_ids) <= 964
    assert {a.split("@")[0] for a in rot.alphabets} == set(splits_28["train"].alphabets)
    # and no image of the evaluation set, in any turn or mirror, is a training image
    train_keys = {im.tobytes() for im in rot.flat_images()}
    for im in evaluation.images.reshape(-1, 28, 28):
        for m in (im, im[:, ::-1]):
            for k in range(4):
                assert np.ascontiguousarray(np.rot90(m, k)).tobytes() not in train_keys
    # the guard: only the training split may be turned into new classes
    for name in ("validation", "test"):
        with pytest.raises(ValueError, match="training split only"):
            om.with_transformed_classes(splits_28[name], "rot")


@pytest.mark.parametrize("alphabets", [0, 1, 2, 4])
def test_class_batches_draw_their_classes_from_the_asked_number_of_alphabets(splits_28, alphabets):
    from model.omniglot.config import resolve
    from model.omniglot.train import TripletBatches

    split = om.with_transformed_classes(splits_28["train"], "rot")
    cfg = resolve("smoke", ["pairs=in_batch", "triplet_classes_per_batch=16", "batch_size=64",
                            f"batch_alphabets={alphabets}"])
    batches = TripletBatches(split, cfg)
    for i in range(5):
        x, labels = batches[i]
        assert x.shape == (64, 28, 28, 1)
        classes = np.unique(labels)
        assert len(classes) == 16 and np.all(np.bincount(labels)[classes] == 4)  # 16 classes x 4 drawers
        alpha, count = np.unique(split.char_alphabet[classes], return_counts=True)
        if alphabets == 1:  # one alphabet gives all it has (the smallest have 14); the rest tops up
            sizes = np.bincount(split.char_alphabet)
            assert count.max() == min(16, sizes[alpha[count.argmax()]])
        elif alphabets:
            assert len(alpha) == alphabets and np.all(count == 16 // alphabets)
        else:
            assert len(alpha) > 8  # all training alphabets: 16 classes rarely share one
