"""One-shot evaluation harness: N-way tasks, Lake's 20 runs, verification pairs.

Every method (the siamese net, the triplet embedding, the prototype scorer, 1-NN on raw
pixels, random guessing) is a pair of
  * features: one row per image (an embedding, or the raw pixels), and
  * a task scorer: (query features (T, d), support features (T, N, d)) -> scores (T, N),
    higher = more likely the query's class,
so all of them run through exactly the same tasks and the same scoring code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from app.domain.vectors import l2_normalize
from model.common import metrics
from model.omniglot import augment
from model.omniglot import data as om
from model.omniglot import tasks as oneshot
from model.omniglot.mhd import PointClouds
from model.omniglot.mnist import make_label_tasks

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- scorers


def siamese_scorer(head, batch_size: int = 8192) -> ScoreFn:
    """Koch et al.: score = the head's P(same) of (query, support) = sigmoid(sum alpha |h_q - h_s| + b)."""

    def score(q: np.ndarray, s: np.ndarray) -> np.ndarray:
        t, n, d = s.shape
        left = np.repeat(q, n, axis=0)
        right = s.reshape(t * n, d)
        out = head.predict([left, right], batch_size=batch_size, verbose=0)
        return np.asarray(out).reshape(t, n)

    return score


def negative_l2_scorer(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Nearest neighbour: score = -||q - s||^2 (1-NN on raw pixels, or on an embedding)."""
    return -np.sum((s - q[:, None, :]) ** 2, axis=-1)


def prototype_scorer(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Support-set-aware nearest prototype (beyond the paper).

    Pairwise scoring judges each (query, support) pair alone. Here the whole support set
    is used: features are centred on the mean of the task's N prototypes and
    L2-normalised (SimpleShot's "CL2N"), so directions shared by all candidate classes
    (stroke thickness, size: what an alphabet has in common) stop dominating the
    distance; the query takes the nearest prototype. The prototypes themselves are
    averages over distorted copies of each support image (see `evaluate_model`).
        score(q, c) = -|| n(q - mu) - n(p_c - mu) ||^2,  mu = mean_c p_c,  n(x) = x / ||x||
    """
    mu = s.mean(axis=1, keepdims=True)

    return negative_l2_scorer(l2_normalize(q - mu[:, 0]), l2_normalize(s - mu))


def random_scorer(seed: int) -> ScoreFn:
    """Chance: uniform random scores (a fixed seed, so the baseline is reproducible)."""
    rng = np.random.default_rng(seed)
    return lambda q, s: rng.random(s.shape[:2])


# ----------------------------------------------------------------------------- features


def embed(model, images_u8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Rows of features for uint8 images (n, H, W), via a Keras model."""
    return np.asarray(model.predict(om.to_float(images_u8), batch_size=batch_size, verbose=0))


def raw_pixels(images_u8: np.ndarray) -> np.ndarray:
    return images_u8.reshape(len(images_u8), -1).astype(np.float32) / 255.0


def augmented_prototypes(
    model, images_u8: np.ndarray, copies: int, seed: int, batch_size: int = 256
) -> np.ndarray:
    """Mean embedding of each image and `copies` paper-style affine distortions of it."""
    feats = embed(model, images_u8, batch_size)
    if copies <= 0:
        return feats
    rng = np.random.default_rng(seed)
    x = images_u8.astype(np.float32)
    total = feats.astype(np.float64)
    for _ in range(copies):
        warped = augment.distort(x, rng, prob=1.0)
        total += embed(model, np.clip(warped, 0, 255).astype(np.uint8), batch_size)
    return (total / (copies + 1)).astype(np.float32)


# ----------------------------------------------------------------------------- tasks


def task_scores(
    query_feats: np.ndarray, support_feats: np.ndarray, tasks: oneshot.TaskSet, score: ScoreFn
) -> np.ndarray:
    return score(query_feats[tasks.query], support_feats[tasks.support])


def oneshot_accuracy(
    query_feats: np.ndarray, support_feats: np.ndarray, tasks: oneshot.TaskSet, score: ScoreFn
) -> float:
    return oneshot.task_accuracy(task_scores(query_feats, support_feats, tasks, score), tasks.answer)


@dataclass(frozen=True)
class TaskSuite:
    """The fixed, seeded task sets of one split: {(within_alphabet, N): TaskSet}."""

    tasks: dict[tuple[bool, int], oneshot.TaskSet]

    @classmethod
    def build(cls, split: om.Split, ways, n_tasks: int, seed: int) -> TaskSuite:
        return cls(
            {
                (within, n): oneshot.make_tasks(split, n, n_tasks, within, seed)
                for within in (False, True)
                for n in ways
            }
        )

    def accuracies(self, query_feats, support_feats, score: ScoreFn) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {"random": {}, "within_alphabet": {}}
        for (within, n), tasks in sorted(self.tasks.items()):
            key = "within_alphabet" if within else "random"
            out[key][n] = oneshot_accuracy(query_feats, support_feats, tasks, score)
        return out


def lake_costs(
    runs: list[oneshot.LakeRun], featurize: Callable[[np.ndarray], np.ndarray], score: ScoreFn,
    featurize_support: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per run, the (20 test, 20 training) cost matrix = -score (Lake's demo minimises a cost)."""
    featurize_support = featurize_support or featurize
    costs = []
    for run in runs:
        q = featurize(run.test)
        s = featurize_support(run.train)
        costs.append(-score(q, np.broadcast_to(s, (len(q), *s.shape))))
    return costs


def lake_accuracy(
    runs: list[oneshot.LakeRun], featurize: Callable[[np.ndarray], np.ndarray], score: ScoreFn,
    featurize_support: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict:
    """Lake's 20 runs: each test item is scored against its run's 20 training images."""
    return oneshot.score_lake_runs(lake_costs(runs, featurize, score, featurize_support), runs)


def transductive_lake(costs: list[np.ndarray], runs: list[oneshot.LakeRun]) -> dict:
    """NOT a one-shot result: uses the structure of Lake's runs, where the 20 test items of
    a run are 20 different classes. Each run's items are matched to its training images
    one-to-one at the lowest total cost (Hungarian algorithm) instead of item by item.
    Reported beside, never instead of, Lake's scoring."""
    one_to_one = []
    for cost in costs:
        rows, cols = linear_sum_assignment(cost)
        onehot = np.ones_like(cost)
        onehot[rows, cols] = 0.0  # argmin of this "cost" is the assigned column
        one_to_one.append(onehot)
    return oneshot.score_lake_runs(one_to_one, runs)


def verification(
    pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    val_feats: np.ndarray,
    val_pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    test_feats: np.ndarray,
    test_pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict:
    """Same/different accuracy on held-out test pairs at the threshold tuned on validation
    pairs. pair_distance(features_a, features_b) -> (n,), smaller = more alike."""
    d_val = pair_distance(val_feats[val_pairs[0]], val_feats[val_pairs[1]])
    threshold, val_acc = metrics.best_accuracy_threshold(d_val, val_pairs[2])
    d_test = pair_distance(test_feats[test_pairs[0]], test_feats[test_pairs[1]])
    report = metrics.evaluate_at(d_test, test_pairs[2], threshold).to_dict()
    report["validation_accuracy"] = round(val_acc, 6)
    return report


# ----------------------------------------------------------------------------- whole runs


@dataclass(frozen=True)
class EvalData:
    """Everything the harness needs at one resolution: splits, fixed task suites, pairs, Lake's runs."""

    splits: dict[str, om.Split]
    suite: TaskSuite
    runs: list[oneshot.LakeRun]
    val_pairs: tuple[np.ndarray, np.ndarray, np.ndarray]
    test_pairs: tuple[np.ndarray, np.ndarray, np.ndarray]

    @classmethod
    def load(cls, image_size: int, ways, n_tasks: int, n_pairs: int, seed: int = 0, data_dir=None) -> EvalData:
        # tasks and pairs depend on the seed and the split only, never on the model, so
        # every method in the report is scored on the very same trials
        bg = om.load_set("background", image_size, data_dir)
        evs = om.load_set("evaluation", image_size, data_dir)
        splits = om.paper_splits(bg, evs)
        return cls(
            splits=splits,
            suite=TaskSuite.build(splits["test"], ways, n_tasks, seed),
            runs=oneshot.load_lake_runs(image_size, data_dir),
            val_pairs=om.sample_pairs(splits["validation"], n_pairs, np.random.default_rng([seed, 7])),
            test_pairs=om.sample_pairs(splits["test"], n_pairs, np.random.default_rng([seed, 8])),
        )


def evaluate_method(
    name: str, data: EvalData, featurize, score: ScoreFn, distance, featurize_support=None
) -> dict:
    """Run one method through the whole harness: N-way suites, Lake's runs, verification."""
    featurize_support = featurize_support or featurize
    test_flat = data.splits["test"].flat_images()
    q = featurize(test_flat)
    s = featurize_support(test_flat)
    out = {"method": name}
    out.update(data.suite.accuracies(q, s, score))
    costs = lake_costs(data.runs, featurize, score, featurize_support)
    out["lake"] = oneshot.score_lake_runs(costs, data.runs)
    out["lake_transductive"] = transductive_lake(costs, data.runs)  # separate, never the headline
    if distance is not None:
        f_val = featurize(data.splits["validation"].flat_images())
        out["verification"] = verification(distance, f_val, data.val_pairs, q, data.test_pairs)
    return out


@dataclass(frozen=True)
class Method:
    """A trained net as the harness sees it: featurize (uint8 images -> rows), score, distance."""

    name: str
    featurize: Callable[[np.ndarray], np.ndarray]
    score: ScoreFn
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    featurize_support: Callable[[np.ndarray], np.ndarray] | None = None


def model_method(model, cfg, scorer: str = "pairwise", tta: int = 0) -> Method:
    """The harness's view of a trained net.

    scorer "pairwise" is the paper's (the siamese head's P(same), or -L2 for the triplet
    net); "prototype" is support-set-aware (centred, augmented prototypes). tta > 0 is
    test-time augmentation: every image, support and query alike, is embedded as the mean
    of itself and `tta` paper-style distortions (a fixed seed), then scored pairwise.
    """
    emb = model.get_layer("embedding")
    triplet = cfg.objective.triplet
    family = cfg.objective.family

    def normalise(f):
        return l2_normalize(f) if triplet else f

    def featurize(images):
        return normalise(embed(emb, images))

    def augmented(copies):
        return lambda images: normalise(augmented_prototypes(emb, images, copies, seed=cfg.seed + 99))

    if scorer == "prototype":
        return Method(f"{cfg.preset}/{family}/prototype", featurize, prototype_scorer,
                      featurize_support=augmented(cfg.proto_augment))
    if scorer != "pairwise":
        raise ValueError(f"unknown scorer {scorer!r}")
    if triplet:
        score, distance = negative_l2_scorer, (lambda a, b: np.sum((a - b) ** 2, axis=1))
    else:
        head = model.get_layer("head")
        score = siamese_scorer(head)

        def distance(a, b):
            return 1.0 - np.asarray(head.predict([a, b], batch_size=8192, verbose=0)).ravel()

    name = f"{cfg.preset}/{family}/nearest" if triplet else f"{cfg.preset}/siamese/pairwise"
    if tta:
        return Method(f"{name}+tta{tta}", augmented(tta), score, distance)
    return Method(name, featurize, score, distance)


def ensemble_method(methods: list[Method], name: str) -> Method:
    """Seed ensemble: each member scores with its own features; the scores are averaged.

    Features are the members' rows side by side, so the harness's index-based task
    lookup is unchanged; each member's score sees only its own columns.
    """
    dims: list[int] = []

    def featurize(images):
        parts = [m.featurize(images) for m in methods]
        dims[:] = [p.shape[1] for p in parts]
        return np.concatenate(parts, axis=1)

    def split(x):
        return np.split(x, np.cumsum(dims)[:-1], axis=-1)

    def score(q, s):
        return np.mean([m.score(qi, si) for m, qi, si in zip(methods, split(q), split(s), strict=True)], axis=0)

    return Method(name, featurize, score)


def evaluate_model(model, cfg, data: EvalData, scorer: str = "pairwise", tta: int = 0) -> dict:
    """A trained net through the harness (see `model_method` for the scorers)."""
    m = model_method(model, cfg, scorer, tta)
    return evaluate_method(m.name, data, m.featurize, m.score, m.distance, m.featurize_support)


def evaluate_baseline(which: str, data: EvalData, seed: int = 0) -> dict:
    """"1nn": nearest neighbour on raw pixels (L2); "mhd": modified Hausdorff distance on
    stroke pixels (Lake et al. 2015's baseline, `model.omniglot.mhd`); "chance": random guessing."""
    if which == "mhd":
        clouds = PointClouds()
        return evaluate_method("modified Hausdorff distance (MHD)", data, clouds.featurize, clouds.score,
                               distance=clouds.pair_distance)
    if which == "1nn":
        return evaluate_method("1-NN raw pixels (L2)", data, raw_pixels, negative_l2_scorer,
                               distance=lambda a, b: np.sum((a - b) ** 2, axis=1))
    if which == "chance":
        return evaluate_method("chance", data, raw_pixels, random_scorer(seed), distance=None)
    raise ValueError(f"unknown baseline {which!r}")


def mnist_oneshot(method: Method, images_u8: np.ndarray, labels: np.ndarray, n_tasks: int = 1000,
                  seed: int = 0, n_way: int = 10) -> dict:
    """Koch et al.'s transfer trial: N-way one-shot tasks over MNIST digits (seeded, so
    every method sees the same tasks), scored by `method` without any fine-tuning.
    `images_u8` must already be at the method's input size (`model.omniglot.mnist.resize`)."""
    tasks = make_label_tasks(labels, n_way, n_tasks, seed)
    feats = method.featurize(images_u8)
    support = method.featurize_support(images_u8) if method.featurize_support else feats
    acc = oneshot_accuracy(feats, support, tasks, method.score)
    return {"method": method.name, "n_way": n_way, "tasks": n_tasks, "seed": seed, "accuracy": acc,
            "stderr": float(np.sqrt(acc * (1 - acc) / n_tasks))}


# ----------------------------------------------------------------------------- plot


def _plot_label(result: dict) -> str:
    """A model's run folder and scorer (two runs of one preset share a method name)."""
    if "run_dir" in result:
        return f"{Path(result['run_dir']).name} ({result.get('scorer', 'pairwise')})"
    return result["method"]


def plot_accuracy_vs_n(results: list[dict], out_path) -> None:
    """Accuracy versus N, one panel for random-class and one for within-alphabet tasks."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in zip(axes, ("random", "within_alphabet"),
                              ("random classes (test alphabets)", "within one alphabet (as Lake's runs)")):
        for r in results:
            curve = r.get(key) or {}
            if not curve:
                continue
            ns = sorted(int(n) for n in curve)
            acc = [100 * curve[str(n)] if str(n) in curve else 100 * curve[n] for n in ns]
            style = {"ls": ":", "color": "grey"} if r["method"] == "chance" else {"marker": "o", "ms": 3}
            ax.plot(ns, acc, label=_plot_label(r), **style)
        ax.set_title(title)
        ax.set_xticks(range(2, 21, 2))
        ax.set_xlabel("N (classes per one-shot task)")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("one-shot accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    ncol = min(len(labels), 3)  # long labels (ensembles name their members) need the width
    rows = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle("Omniglot N-way one-shot accuracy (test split: 10 evaluation alphabets, drawers 17-20)")
    fig.tight_layout(rect=(0, 0.01 + 0.045 * rows, 1, 1))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
