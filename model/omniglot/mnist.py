"""The MNIST test set for Koch et al.'s (2015) one-shot transfer trial.

The net trained on Omniglot is used unchanged on 10-way one-shot tasks over the ten
digits: one support image per digit, one query. Only the test set (10,000 digits) is in
../shared/data/mnist, as gzip-compressed IDX files read in place.

MNIST digits are white strokes on black, which is already this project's convention for
Omniglot after loading (strokes = 255, background = 0: `model.omniglot.data` inverts
Lake's black-on-white PNGs), so they are only resized to the net's input, never inverted.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from model.common import paths
from model.omniglot.tasks import TaskSet

IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def _read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = np.frombuffer(raw, ">u4", count=1 + dims)
    if int(header[0]) != magic:
        raise ValueError(f"{path.name}: IDX magic {int(header[0])}, expected {magic}")
    shape = tuple(int(x) for x in header[1:])
    data = np.frombuffer(raw, np.uint8, offset=4 * (1 + dims))
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path.name}: {data.size} bytes of data, header says {shape}")
    return data.reshape(shape)


def load_mnist_test(data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (10000, 28, 28) uint8 with strokes = 255, labels (10000,) uint8 digits)."""
    folder = paths.data_dir(data_dir) / "mnist"
    for name in (IMAGES_FILE, LABELS_FILE):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} not found (set FACEAPI_DATA_DIR or --data-dir)")
    images = _read_idx(folder / IMAGES_FILE, IMAGES_MAGIC, 3)
    labels = _read_idx(folder / LABELS_FILE, LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return images, labels


def resize(images_u8: np.ndarray, size: int) -> np.ndarray:
    """(n, 28, 28) -> (n, size, size) uint8, bilinear (the net's input size)."""
    if images_u8.shape[-1] == size:
        return images_u8.copy()
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images_u8])


def make_label_tasks(labels: np.ndarray, n_way: int, n_tasks: int, seed: int) -> TaskSet:
    """Seeded N-way one-shot tasks over images with class `labels` (indices into them).

    Each task takes N distinct classes, one random support image of each, and a query:
    another image (never the support image itself) of one of the N classes, at a random
    position.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if n_way > len(classes):
        raise ValueError(f"{n_way}-way tasks need {n_way} classes, there are {len(classes)}")
    members = {c: np.flatnonzero(labels == c) for c in classes}
    rng = np.random.default_rng([seed, n_way, 2])
    query = np.empty(n_tasks, np.int64)
    support = np.empty((n_tasks, n_way), np.int64)
    answer = np.empty(n_tasks, np.int64)
    for t in range(n_tasks):
        chosen = rng.choice(classes, size=n_way, replace=False)
        answer[t] = rng.integers(n_way)
        for k, c in enumerate(chosen):
            if k == answer[t]:
                s, q = rng.choice(members[c], size=2, replace=False)
                support[t, k], query[t] = s, q
            else:
                support[t, k] = rng.choice(members[c])
    return TaskSet(n_way, query, support, answer, within_alphabet=False)
