"""One-shot N-way tasks: seeded tasks over a split, their scoring, and Lake's 20 official runs."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.common import paths
from model.omniglot.data import (
    N_DRAWERS,
    ORIGINAL_SIZE,
    OmniglotSet,
    Split,
    decode_png,
    resize_stack,
)


@dataclass(frozen=True)
class TaskSet:
    """Fixed one-shot tasks over `split.flat_images()` indices.

    query[t] is one image; support[t] holds N images, one per distinct class, drawn by
    a second drawer; answer[t] is the position in support[t] of the query's class.
    """

    n_way: int
    query: np.ndarray  # (T,)
    support: np.ndarray  # (T, N)
    answer: np.ndarray  # (T,)
    within_alphabet: bool


def make_tasks(
    split: Split, n_way: int, n_tasks: int, within_alphabet: bool, seed: int
) -> TaskSet:
    """Seeded N-way one-shot tasks (the same seed gives the same tasks).

    Each task: N distinct characters (from one alphabet when `within_alphabet`, as in
    Lake's runs), two distinct drawers of the split: one draws the N support images,
    the other the query, whose class is one of the N at a random position.
    """
    rng = np.random.default_rng([seed, n_way, int(within_alphabet)])
    nd = split.n_drawers
    by_alpha = [np.flatnonzero(split.char_alphabet == a) for a in range(len(split.alphabets))]
    eligible = [m for m in by_alpha if len(m) >= n_way]
    if within_alphabet and not eligible:
        raise ValueError(f"no alphabet of {split.name} has {n_way} characters")
    query = np.empty(n_tasks, np.int64)
    support = np.empty((n_tasks, n_way), np.int64)
    answer = np.empty(n_tasks, np.int64)
    for t in range(n_tasks):
        pool = eligible[rng.integers(len(eligible))] if within_alphabet else np.arange(split.n_chars)
        chars = rng.choice(pool, size=n_way, replace=False)
        d_support, d_query = rng.choice(nd, size=2, replace=False)
        answer[t] = rng.integers(n_way)
        support[t] = chars * nd + d_support
        query[t] = chars[answer[t]] * nd + d_query
    return TaskSet(n_way, query, support, answer, within_alphabet)


def task_accuracy(scores: np.ndarray, answer: np.ndarray) -> float:
    """Fraction of tasks whose highest score is the right support image.

    Ties are broken towards the lowest index; answers sit at random positions, so a
    constant scorer lands at chance rather than at 100 %.
    """
    return float(np.mean(np.argmax(scores, axis=1) == answer))


# ----------------------------------------------------------------------------- Lake's runs


@dataclass(frozen=True)
class LakeRun:
    """One of Lake's 20-way runs: 20 training images (one per class), 20 test items."""

    name: str
    train: np.ndarray  # (20, H, W) uint8, strokes = 255, in classNN order
    test: np.ndarray  # (20, H, W) uint8, in itemNN order
    answer: np.ndarray  # (20,) index into `train` of each test item's class


def load_lake_runs(size: int = ORIGINAL_SIZE, data_dir: Path | None = None) -> list[LakeRun]:
    """Read all_runs.zip in place: runNN/{training/classCC,test/itemII}.png + class_labels.txt."""
    data_dir = paths.data_dir(data_dir)
    runs = []
    with zipfile.ZipFile(data_dir / "omniglot" / "all_runs.zip") as zf:
        names = set(zf.namelist())
        run_names = sorted({n.split("/")[0] for n in names if n.startswith("run")})
        for run in run_names:
            train_files = sorted(n for n in names if n.startswith(f"{run}/training/") and n.endswith(".png"))
            test_files = sorted(n for n in names if n.startswith(f"{run}/test/") and n.endswith(".png"))
            pos = {f: i for i, f in enumerate(train_files)}
            labels = {}
            for line in zf.read(f"{run}/class_labels.txt").decode().split("\n"):
                if line.strip():
                    item, cls = line.split()
                    labels[item] = pos[cls]
            train = np.stack([decode_png(zf.read(f)) for f in train_files])
            test = np.stack([decode_png(zf.read(f)) for f in test_files])
            runs.append(
                LakeRun(
                    name=run,
                    train=resize_stack(train, size),
                    test=resize_stack(test, size),
                    answer=np.array([labels[f] for f in test_files]),
                )
            )
    return runs


def score_lake_runs(costs: list[np.ndarray], runs: list[LakeRun]) -> dict:
    """Lake's scoring (brendenlake/omniglot, classification_demo): per run, each test item
    takes the training image of lowest cost; the run's error is the % of items wrong.
    The reported figure is the mean error over the runs; we also give 100 - it.

    costs[r] is (20 test, 20 train); lower = more alike (pass -score for similarities).
    """
    per_run = []
    for cost, run in zip(costs, runs, strict=True):
        yhat = np.argmin(cost, axis=1)
        per_run.append(100.0 * float(np.mean(yhat != run.answer)))
    mean_error = float(np.mean(per_run))
    return {
        "percent_correct": 100.0 - mean_error,
        "mean_error": mean_error,
        "per_run_error": per_run,
        "trials": int(sum(len(r.answer) for r in runs)),
    }


def lake_run_provenance(evaluation: OmniglotSet, runs: list[LakeRun]) -> dict[str, list]:
    """Which evaluation alphabet / drawer each run image is, by exact pixel match.

    `evaluation` and `runs` must both be at 105 x 105.
    """
    index = {}
    for c in range(evaluation.n_chars):
        for d in range(N_DRAWERS):
            key = hashlib.sha1(np.packbits(evaluation.images[c, d] > 127).tobytes()).hexdigest()
            index[key] = (evaluation.alphabets[evaluation.char_alphabet[c]], d + 1)
    out = {}
    for run in runs:
        found = [
            index.get(hashlib.sha1(np.packbits(im > 127).tobytes()).hexdigest(), (None, None))
            for im in np.concatenate([run.train, run.test])
        ]
        out[run.name] = found
    return out
