"""Omniglot for Koch et al. (2015): loading, the paper's splits, pairs, distortions, tasks.

Everything here is numpy; nothing depends on Keras, so the data side can be tested
and reused without a model.

Images are float32 in [0, 1] with strokes = 1 and background = 0 (Lake's PNGs are
inverted on load), so that the zero padding of an affine warp is background.

Splits (Koch et al. 2015, section 4.1):
  train       the 30 background alphabets, drawers 1-12
  validation  10 evaluation alphabets (`VALIDATION_ALPHABETS`), drawers 13-16
  test        the other 10 evaluation alphabets, drawers 17-20
Alphabets never cross splits and neither do drawers, so no image, character or drawer
of the validation/test split is ever seen in training (no label leakage).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_SIZE = 105
N_DRAWERS = 20

# The paper does not list its 10 + 10 evaluation alphabets. Lake's 20 official runs
# draw on exactly 10 evaluation alphabets (checked by matching pixels, see
# `lake_run_provenance`); we validate on the other 10 so that early stopping never
# sees an alphabet of the final test, and test on the same 10 alphabets as Lake.
VALIDATION_ALPHABETS = (
    "Angelic",
    "Atemayar_Qelisayer",
    "Aurek-Besh",
    "Avesta",
    "Keble",
    "Mongolian",
    "Oriya",
    "Sylheti",
    "Syriac_(Serto)",
    "ULOG",
)
# = the 10 evaluation alphabets of Lake's runs (drawers 1-8 there):
LAKE_RUN_ALPHABETS = (
    "Atlantean",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Malayalam",
    "Manipuri",
    "Old_Church_Slavonic_(Cyrillic)",
    "Tengwar",
    "Tibetan",
)
TRAIN_DRAWERS = tuple(range(0, 12))  # 0-based drawer index: drawers 01-12
VAL_DRAWERS = tuple(range(12, 16))  # drawers 13-16
TEST_DRAWERS = tuple(range(16, 20))  # drawers 17-20


def default_data_dir() -> Path:
    """FACEAPI_DATA_DIR if set, else ../shared/data relative to the repo root."""
    env = os.environ.get("FACEAPI_DATA_DIR")
    return Path(env) if env else (REPO_ROOT / ".." / "shared" / "data").resolve()


def default_cache_dir() -> Path:
    return REPO_ROOT / "var" / "cache"


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class OmniglotSet:
    """One Omniglot image set: images[c, d] is character c drawn by drawer d."""

    images: np.ndarray  # (characters, 20, H, W) uint8, strokes = 255
    alphabets: tuple[str, ...]  # alphabet names, sorted
    char_alphabet: np.ndarray  # (characters,) index into `alphabets`
    char_ids: np.ndarray  # (characters,) Omniglot's global character id (1..1623)

    @property
    def n_chars(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def alphabet_chars(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.char_alphabet == self.alphabets.index(name))


def _decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> bool array, True where there is ink."""
    img = Image.open(io.BytesIO(data)).convert("L")
    return np.asarray(img) < 128


def _decode_set_zip(path: Path) -> tuple[np.ndarray, list[str], list[int], list[int]]:
    records: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith(".png"):
                continue
            _, alphabet, _char_dir, fname = name.split("/")
            char_id, drawer = fname[:-4].split("_")
            records.setdefault((alphabet, int(char_id)), {})[int(drawer) - 1] = _decode_png(
                zf.read(name)
            )
    keys = sorted(records, key=lambda k: k[1])
    ink = np.zeros((len(keys), N_DRAWERS, ORIGINAL_SIZE, ORIGINAL_SIZE), dtype=bool)
    for i, key in enumerate(keys):
        drawers = records[key]
        if len(drawers) != N_DRAWERS:
            raise ValueError(f"{path.name}: {key} has {len(drawers)} drawers, expected 20")
        for d, arr in drawers.items():
            ink[i, d] = arr
    return ink, [k[0] for k in keys], [k[1] for k in keys], list(range(len(keys)))


def _resize_stack(ink_or_u8: np.ndarray, size: int) -> np.ndarray:
    """Area-average downscale (anti-aliased) of (..., 105, 105) to (..., size, size) uint8."""
    flat = ink_or_u8.reshape(-1, ORIGINAL_SIZE, ORIGINAL_SIZE)
    src = flat.astype(np.uint8) * 255 if flat.dtype == bool else flat
    if size == ORIGINAL_SIZE:
        out = src.copy()
    else:
        out = np.stack(
            [np.asarray(Image.fromarray(im).resize((size, size), Image.BOX)) for im in src]
        )
    return out.reshape(*ink_or_u8.shape[:-2], size, size)


def load_set(
    which: str,
    size: int = ORIGINAL_SIZE,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> OmniglotSet:
    """Load "background" or "evaluation" at `size` x `size`, via a uint8 .npz cache.

    The zip is decoded once (~32k small PNGs) and every resolution is cached beside it,
    so a reload is one np.load.
    """
    if which not in ("background", "evaluation"):
        raise ValueError(f"unknown Omniglot set {which!r}")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache = cache_dir / f"omniglot_{which}_{size}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return OmniglotSet(
                images=z["images"],
                alphabets=tuple(str(a) for a in z["alphabets"]),
                char_alphabet=z["char_alphabet"],
                char_ids=z["char_ids"],
            )
    zip_path = data_dir / "omniglot" / f"images_{which}.zip"
    if not zip_path.exists():
        raise FileNotFoundError(f"{zip_path} not found (set FACEAPI_DATA_DIR or --data-dir)")
    ink, char_alpha_names, char_ids, _ = _decode_set_zip(zip_path)
    alphabets = tuple(sorted(set(char_alpha_names)))
    char_alphabet = np.array([alphabets.index(a) for a in char_alpha_names], dtype=np.int16)
    images = _resize_stack(ink, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        images=images,
        alphabets=np.array(alphabets),
        char_alphabet=char_alphabet,
        char_ids=np.array(char_ids, dtype=np.int16),
    )
    tmp.replace(cache)  # atomic: a concurrent reader never sees half a file
    return OmniglotSet(images, alphabets, char_alphabet, np.array(char_ids, dtype=np.int16))


def to_float(images_u8: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W) -> float32 (..., H, W, 1) in [0, 1], the network's input."""
    return (images_u8.astype(np.float32) / 255.0)[..., None]


# ----------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    """A view of an image set restricted to some alphabets and drawers.

    `images` is (chars, drawers, H, W); `char_alphabet` indexes `alphabets`.
    """

    name: str
    images: np.ndarray
    alphabets: tuple[str, ...]
    char_alphabet: np.ndarray
    char_ids: np.ndarray
    drawers: tuple[int, ...]  # 0-based original drawer indices kept

    @property
    def n_chars(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_drawers(self) -> int:
        return int(self.images.shape[1])

    def flat_images(self) -> np.ndarray:
        """(chars * drawers, H, W): image (c, d) lives at c * n_drawers + d."""
        return self.images.reshape(-1, *self.images.shape[2:])


def make_split(
    name: str, data: OmniglotSet, alphabets: tuple[str, ...], drawers: tuple[int, ...]
) -> Split:
    keep_alpha = [data.alphabets.index(a) for a in alphabets]
    chars = np.flatnonzero(np.isin(data.char_alphabet, keep_alpha))
    remap = {old: new for new, old in enumerate(keep_alpha)}
    return Split(
        name=name,
        images=data.images[chars][:, list(drawers)],
        alphabets=tuple(alphabets),
        char_alphabet=np.array([remap[int(a)] for a in data.char_alphabet[chars]], dtype=np.int16),
        char_ids=data.char_ids[chars],
        drawers=tuple(drawers),
    )


def paper_splits(background: OmniglotSet, evaluation: OmniglotSet) -> dict[str, Split]:
    """train / validation / test as in Koch et al. (2015); see the module docstring."""
    test_alphabets = tuple(a for a in evaluation.alphabets if a not in VALIDATION_ALPHABETS)
    return {
        "train": make_split("train", background, background.alphabets, TRAIN_DRAWERS),
        "validation": make_split("validation", evaluation, VALIDATION_ALPHABETS, VAL_DRAWERS),
        "test": make_split("test", evaluation, test_alphabets, TEST_DRAWERS),
    }


# ----------------------------------------------------------------------------- pairs


def sample_pairs(
    split: Split, n_pairs: int, rng: np.random.Generator, within_alphabet_negatives: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced verification pairs from one split: (left, right, same).

    left/right index `split.flat_images()`. The first half (rounded down) are "same"
    pairs (one character, two different drawers); the rest are "different" pairs (two
    distinct characters, each with its own random drawer). A fraction of the negatives
    is drawn inside one alphabet: those are the confusions the within-alphabet one-shot
    task tests. The pairs are shuffled.
    """
    n_same = n_pairs // 2
    n_diff = n_pairs - n_same
    nd = split.n_drawers
    c_same = rng.integers(0, split.n_chars, n_same)
    d1 = rng.integers(0, nd, n_same)
    d2 = (d1 + rng.integers(1, nd, n_same)) % nd  # always a different drawer
    left_s, right_s = c_same * nd + d1, c_same * nd + d2

    c1 = rng.integers(0, split.n_chars, n_diff)
    c2 = (c1 + rng.integers(1, split.n_chars, n_diff)) % split.n_chars
    n_within = int(round(within_alphabet_negatives * n_diff))
    if n_within:
        by_alpha = [np.flatnonzero(split.char_alphabet == a) for a in range(len(split.alphabets))]
        for i in range(n_within):
            members = by_alpha[split.char_alphabet[c1[i]]]
            other = members[members != c1[i]]
            c2[i] = other[rng.integers(0, len(other))]
    left_d = c1 * nd + rng.integers(0, nd, n_diff)
    right_d = c2 * nd + rng.integers(0, nd, n_diff)

    left = np.concatenate([left_s, left_d])
    right = np.concatenate([right_s, right_d])
    same = np.concatenate([np.ones(n_same, bool), np.zeros(n_diff, bool)])
    order = rng.permutation(n_pairs)
    return left[order], right[order], same[order]


def pair_chars(split: Split, flat_index: np.ndarray) -> np.ndarray:
    return np.asarray(flat_index) // split.n_drawers


# ----------------------------------------------------------------------------- distortions

# Koch et al. (2015), section 4.1: T = (theta, rho_x, rho_y, s_x, s_y, t_x, t_y).
ROTATION_DEG = 10.0
SHEAR = 0.3
SCALE = (0.8, 1.2)
TRANSLATION_PX = 2.0  # at 105 x 105; scaled with the image size
COMPONENT_PROB = 0.5


def sample_affine_params(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 7) parameters [theta_deg, rho_x, rho_y, s_x, s_y, t_x, t_y] in 105-px units.

    Each of the seven components is drawn from its range with probability 0.5 and
    otherwise left at identity (0 or 1), as in the paper.
    """
    low = np.array([-ROTATION_DEG, -SHEAR, -SHEAR, SCALE[0], SCALE[0], -TRANSLATION_PX, -TRANSLATION_PX])
    high = np.array([ROTATION_DEG, SHEAR, SHEAR, SCALE[1], SCALE[1], TRANSLATION_PX, TRANSLATION_PX])
    identity = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    drawn = rng.uniform(low, high, size=(n, 7))
    on = rng.random((n, 7)) < COMPONENT_PROB
    return np.where(on, drawn, identity)


def affine_matrices(params: np.ndarray, size: int) -> np.ndarray:
    """(n, 2, 3) forward maps in pixel coordinates, about the image centre.

    A = R(theta) @ Shear(rho_x, rho_y) @ Scale(s_x, s_y); x' = A (x - c) + c + t.
    """
    th = np.deg2rad(params[:, 0])
    cos, sin = np.cos(th), np.sin(th)
    n = len(params)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.broadcast_to(np.eye(2), (n, 2, 2)).copy()
    shear[:, 0, 1], shear[:, 1, 0] = params[:, 1], params[:, 2]
    scale = np.zeros((n, 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = params[:, 3], params[:, 4]
    a = rot @ shear @ scale
    c = (size - 1) / 2.0
    t = params[:, 5:7] * (size / ORIGINAL_SIZE)
    offset = c + t - (a @ np.array([c, c]))
    return np.concatenate([a, offset[:, :, None]], axis=2)


def warp_affine(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Bilinear warp of a batch (n, H, W) float by forward maps (n, 2, 3); zero fill.

    Vectorised over the batch with one gather per corner: the inverse map sends each
    output pixel back into the source image.
    """
    n, h, w = images.shape
    a = matrices[:, :, :2]
    inv = np.linalg.inv(a)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out_xy = np.stack([xs.ravel(), ys.ravel()], 0)  # (2, HW) as (x, y)
    src = inv @ (out_xy[None] - matrices[:, :, 2:3])  # (n, 2, HW)
    sx, sy = src[:, 0], src[:, 1]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))  # out-of-range reads hit zeros
    flat = padded.reshape(n, -1)
    pw = w + 2

    def gather(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        yy = np.clip(yy + 1, 0, h + 1)
        xx = np.clip(xx + 1, 0, w + 1)
        return np.take_along_axis(flat, yy * pw + xx, axis=1)

    out = (
        gather(y0, x0) * (1 - fx) * (1 - fy)
        + gather(y0, x0 + 1) * fx * (1 - fy)
        + gather(y0 + 1, x0) * (1 - fx) * fy
        + gather(y0 + 1, x0 + 1) * fx * fy
    )
    return out.reshape(n, h, w).astype(images.dtype, copy=False)


def distort(images: np.ndarray, rng: np.random.Generator, prob: float = 1.0) -> np.ndarray:
    """Apply a fresh random paper-style affine map to a fraction `prob` of a batch."""
    out = images.copy()
    chosen = np.flatnonzero(rng.random(len(images)) < prob)
    if len(chosen):
        mats = affine_matrices(sample_affine_params(len(chosen), rng), images.shape[-1])
        out[chosen] = warp_affine(images[chosen], mats)
    return out


# ----------------------------------------------------------------------------- N-way tasks


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
    data_dir = Path(data_dir) if data_dir else default_data_dir()
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
            train = np.stack([_decode_png(zf.read(f)) for f in train_files])
            test = np.stack([_decode_png(zf.read(f)) for f in test_files])
            runs.append(
                LakeRun(
                    name=run,
                    train=_resize_stack(train, size),
                    test=_resize_stack(test, size),
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
