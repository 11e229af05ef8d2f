"""Omniglot for Koch et al. (2015): loading, the paper's splits, pairs.

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

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.common import paths
from model.common.checkpoints import save_atomic

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


def decode_png(data: bytes) -> np.ndarray:
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
            records.setdefault((alphabet, int(char_id)), {})[int(drawer) - 1] = decode_png(
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


def resize_stack(ink_or_u8: np.ndarray, size: int) -> np.ndarray:
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
    data_dir = paths.data_dir(data_dir)
    cache_dir = paths.cache_dir(cache_dir)
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
    images = resize_stack(ink, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # atomic, under a unique name: a concurrent reader never sees half a file, and two
    # trainings started together both fill the cache without colliding
    save_atomic(cache, lambda tmp: np.savez(
        tmp,
        images=images,
        alphabets=np.array(alphabets),
        char_alphabet=char_alphabet,
        char_ids=np.array(char_ids, dtype=np.int16),
    ))
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


TRANSFORM_CLASSES = {
    "none": ((0,), False),
    "rot": ((0, 1, 2, 3), False),  # quarter turns (Vinyals et al. 2016, Santoro et al. 2016)
    "rot+flip": ((0, 1, 2, 3), True),  # and their mirror images: 8 classes per character
}


def with_transformed_classes(split: Split, which: str = "rot") -> Split:
    """The training split with each character's quarter turns (and mirror images) as new classes.

    A character turned by 90 degrees is, for a one-shot learner, a character it has not
    seen: more training classes at no cost in data. Every copy keeps its source's
    Omniglot id in `char_ids` and gets its own alphabet ("Greek@r90m"), so within-alphabet
    negatives stay within one visual style. Only a split named "train" is accepted: the
    copies are made from its own images, so no evaluation image, character or alphabet
    can enter it.
    """
    if which not in TRANSFORM_CLASSES:
        raise ValueError(f"unknown transform classes {which!r}; choose from {sorted(TRANSFORM_CLASSES)}")
    if split.name != "train":
        raise ValueError(f"transformed classes are for the training split only, not {split.name!r}")
    turns, mirror = TRANSFORM_CLASSES[which]
    if which == "none":
        return split
    images, alphabets, char_alphabet, char_ids = [], [], [], []
    n_alpha = len(split.alphabets)
    variants = [(k, m) for m in ((False, True) if mirror else (False,)) for k in turns]
    for v, (k, m) in enumerate(variants):
        im = split.images[..., ::-1] if m else split.images
        images.append(np.rot90(im, k, axes=(-2, -1)))
        suffix = "" if (k, m) == (0, False) else f"@r{90 * k}{'m' if m else ''}"
        alphabets.extend(a + suffix for a in split.alphabets)
        char_alphabet.append(split.char_alphabet + v * n_alpha)
        char_ids.append(split.char_ids)
    return Split(
        name=f"train+{which}",
        images=np.ascontiguousarray(np.concatenate(images)),
        alphabets=tuple(alphabets),
        char_alphabet=np.concatenate(char_alphabet).astype(np.int16),
        char_ids=np.concatenate(char_ids),
        drawers=split.drawers,
    )


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
