"""The MNIST test set for Koch's one-shot transfer trial: loader on the real files, seeded tasks."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from model.omniglot import evaluate as ev
from model.omniglot import mnist
from model.common import paths
from tests.conftest import require_data


@pytest.fixture(scope="module")
def mnist_test():
    require_data(paths.data_dir() / "mnist" / mnist.IMAGES_FILE)
    return mnist.load_mnist_test()


def test_loader_reads_the_real_test_set(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    # the official test set's digit counts (shared/data/README.md)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_digits_are_strokes_high_on_a_zero_background_like_omniglot(mnist_test):
    images, _ = mnist_test
    border = np.concatenate([images[:, :2].ravel(), images[:, -2:].ravel(), images[:, :, :2].ravel()])
    assert (border > 0).mean() < 0.01  # the 2-px margin is background = 0 (a few digits touch it)
    assert images.max() == 255
    assert 0.1 < (images > 127).mean() < 0.25  # thin strokes, not an inverted (mostly bright) image


def test_resize_keeps_ink_where_it_was(mnist_test):
    images, _ = mnist_test
    big = mnist.resize(images[:5], 52)
    assert big.shape == (5, 52, 52) and big.dtype == np.uint8
    for small, large in zip(images[:5], big):
        cy, cx = np.argwhere(small > 127).mean(axis=0) * 52 / 28
        ly, lx = np.argwhere(large > 127).mean(axis=0)
        assert abs(cy - ly) < 1.5 and abs(cx - lx) < 1.5


def test_a_wrong_magic_number_is_a_clear_error(tmp_path):
    (tmp_path / "mnist").mkdir()
    for name in (mnist.IMAGES_FILE, mnist.LABELS_FILE):
        with gzip.open(tmp_path / "mnist" / name, "wb") as f:
            f.write(np.array([1234, 1, 28, 28], ">u4").tobytes() + bytes(784))
    with pytest.raises(ValueError, match="magic"):
        mnist.load_mnist_test(tmp_path)


def test_label_tasks_are_seeded_and_well_formed():
    labels = np.repeat(np.arange(10), 7)
    tasks = mnist.make_label_tasks(labels, 10, 300, seed=1)
    again = mnist.make_label_tasks(labels, 10, 300, seed=1)
    np.testing.assert_array_equal(tasks.support, again.support)
    np.testing.assert_array_equal(tasks.query, again.query)
    for t in range(300):
        classes = labels[tasks.support[t]]
        assert len(set(classes.tolist())) == 10
        assert labels[tasks.query[t]] == classes[tasks.answer[t]]
        assert tasks.query[t] not in tasks.support[t]
    assert np.bincount(tasks.answer, minlength=10).min() > 10  # answers at random positions


def test_one_nn_on_mnist_is_well_above_chance(mnist_test):
    images, labels = mnist_test
    nn = ev.mnist_oneshot(ev.Method("1-NN", ev.raw_pixels, ev.negative_l2_scorer), images, labels, n_tasks=400)
    chance = ev.mnist_oneshot(ev.Method("chance", ev.raw_pixels, ev.random_scorer(0)), images, labels, n_tasks=400)
    assert abs(chance["accuracy"] - 0.1) < 0.05
    assert nn["accuracy"] > 0.25  # Koch et al. report about 27 % for 1-NN
