"""Siamese fine-tuning of the face embedder (`python -m model faces finetune`).

Recipe ("VGGFace-style"): the pretrained FaceNet base is frozen up to a stage, a
projection (and, for the pair objective, a pair head) is trained on same/different
faces of CelebA *training identities*, and the epoch with the best validation ROC AUC
(validation identities, disjoint) is kept. The threshold is tuned at export time.

Where the base is frozen, its features are computed once with the frozen graph (for the
faces and their mirror images, so flip augmentation costs nothing) and cached under
var/cache keyed by the content of the aligned faces: a change of the alignment template
invalidates them by itself. Affine and colour augmentation change pixels, so they need
the end-to-end mode (base_stage="stem"), which runs the Keras port of the base.

A run directory (default runs/faces/<preset>) holds config.json, last.keras (full training
model with optimizer state), state.json (epoch, best score), best_embedding.keras and
TensorBoard logs (tb/). `--resume` continues from last.keras; each epoch's batches are
drawn from a generator seeded by (seed, epoch), so a resumed run sees the same data.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from model.common import metrics, paths
from model.common.checkpoints import save_atomic, write_json_atomic
from model.common.epoch_logs import epoch_loggers
from model.common.losses import TripletSemiHardLoss
from model.faces import data as facedata
from model.faces import heads
from model.faces.augment import augment_images
from model.faces.config import FaceTuneConfig
from model.faces.faceset import FaceSet
from model.faces.features import base_features
from model.faces.fusion import fused_features
from model.faces.sface import build_sface_embedding, sface_features
from model.faces.splits import Splits, make_splits

RUNS = paths.RUNS / "faces"


class _Inputs:
    """Materialises model inputs for face indices: cached features (original or mirrored) or images."""

    def __init__(self, fs: FaceSet, cfg: FaceTuneConfig, feats: dict[str, np.ndarray] | None):
        self.fs, self.cfg, self.feats = fs, cfg, feats

    def get(self, idx: np.ndarray, flips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.feats is None:  # end to end: images, augmented here
            return augment_images(self.fs.faces[idx], rng, self.cfg)
        x = np.array(self.feats["orig"][idx])
        if flips.any():
            x[flips] = self.feats["flip"][idx[flips]]
        return x


def _epoch_plan(cfg: FaceTuneConfig, fs: FaceSet, splits: Splits, epoch: int):
    """Index arrays for one epoch, from a generator seeded by (seed, epoch)."""
    rng = np.random.default_rng([cfg.seed, epoch])
    if cfg.objective == "pairs":
        usable = np.zeros(len(fs.usable), bool)
        usable[splits.train_idx] = True
        pairs = facedata.balanced_pairs(fs.identities, usable, splits.ids["train"], cfg.pairs_per_epoch // 2,
                                        seed=int(rng.integers(2**31)))
        n = len(pairs) // cfg.batch_size * cfg.batch_size
        return [(pairs.a[s : s + cfg.batch_size], pairs.b[s : s + cfg.batch_size],
                 pairs.same[s : s + cfg.batch_size]) for s in range(0, n, cfg.batch_size)]
    by_id = {}
    for i in splits.train_idx:
        by_id.setdefault(int(fs.identities[i]), []).append(i)
    ids = np.array([k for k, v in by_id.items() if len(v) >= 2])
    per_id = cfg.batch_size // cfg.identities_per_batch
    batches = []
    for _ in range(cfg.triplet_batches_per_epoch):
        chosen = rng.choice(ids, size=min(cfg.identities_per_batch, len(ids)), replace=False)
        idx = np.concatenate([rng.choice(by_id[int(c)], size=per_id, replace=len(by_id[int(c)]) < per_id)
                              for c in chosen])
        batches.append((idx, fs.identities[idx]))
    return batches


def _make_dataset(plan, epoch: int, inputs: _Inputs, cfg: FaceTuneConfig):
    flip_p = 0.5 if cfg.flip and inputs.feats is not None else 0.0

    class EpochBatches(keras.utils.PyDataset):
        def __len__(self):
            return len(plan)

        def __getitem__(self, i):
            # a per-batch generator keeps batches reproducible whatever order Keras asks for them
            brng = np.random.default_rng([cfg.seed, epoch, i])
            if cfg.objective == "pairs":
                a, b, same = plan[i]
                xa = inputs.get(a, brng.random(len(a)) < flip_p, brng)
                xb = inputs.get(b, brng.random(len(b)) < flip_p, brng)
                return (xa, xb), same.astype(np.float32)[:, None]
            idx, labels = plan[i]
            return inputs.get(idx, brng.random(len(idx)) < flip_p, brng), labels.astype(np.int32)

    return EpochBatches()


# --------------------------------------------------------------------------- model


def build_models(cfg: FaceTuneConfig, constants=None):
    """(training model, embedding sub-model), compiled."""
    if cfg.base in ("sface", "fusion"):
        embedding = build_sface_embedding(cfg.embedding_dim, cfg.seed, 256 if cfg.base == "fusion" else 128)
    else:
        embedding = heads.build_embedding(cfg.base_stage, cfg.embedding_dim, cfg.seed,
                                          cfg.trainable_from or None, constants)
    optimizer = keras.optimizers.AdamW(cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.objective == "pairs":
        model = heads.build_pair_model(embedding, cfg.pair_hidden, cfg.pair_dropout, cfg.seed)
        model.compile(optimizer, keras.losses.BinaryCrossentropy(), metrics=["binary_accuracy"])
    else:
        model = heads.build_triplet_model(embedding)
        model.compile(optimizer, TripletSemiHardLoss(cfg.triplet_margin))
    return model, embedding


def embed(embedding, x: np.ndarray, idx: np.ndarray, batch: int = 256) -> np.ndarray:
    out = np.zeros((len(x), embedding.output_shape[-1]), np.float32)
    for s in range(0, len(idx), batch):
        chunk = idx[s : s + batch]
        out[chunk] = embedding.predict_on_batch(np.asarray(x[chunk]))
    return out


def validate(embedding, x_orig: np.ndarray, pairs: facedata.Pairs) -> dict:
    idx = np.unique(np.r_[pairs.a, pairs.b])
    emb = embed(embedding, x_orig, idx)
    d = facedata.pair_distances(emb, pairs)
    t, acc = metrics.best_accuracy_threshold(d, pairs.same)
    return {"val_auc": metrics.roc_auc(d, pairs.same), "val_accuracy": acc, "val_threshold": t,
            "val_tar_at_far_1e3": metrics.tar_at_far(d, pairs.same, 1e-3)}


# --------------------------------------------------------------------------- training


def train(cfg: FaceTuneConfig, fs: FaceSet, run_dir: Path, resume: bool = False,
          cache: Path | None = None) -> dict:
    """Fine-tune per `cfg` on `fs`; returns the final state (best validation AUC and its epoch)."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path, last_path = run_dir / "state.json", run_dir / "last.keras"
    if resume and state_path.exists():
        saved = FaceTuneConfig.load(run_dir / "config.json")
        # a resumed run may be given more epochs or patience; anything else would mix two runs
        if replace(saved, epochs=cfg.epochs, patience=cfg.patience) != cfg:
            raise ValueError(f"--resume: {run_dir}/config.json differs from the requested config "
                             "(only epochs and patience may change)")
    elif (run_dir / "state.json").exists() and not resume:
        raise FileExistsError(f"{run_dir} holds a run; pass --resume or choose another --run-dir")
    (run_dir / "config.json").write_text(cfg.to_json())

    splits = make_splits(fs, cfg)
    feats = None
    if cfg.base == "sface":
        feats = {"orig": sface_features(fs.faces, fs.usable, False, cache)}
        if cfg.flip:
            feats["flip"] = sface_features(fs.faces, fs.usable, True, cache)
    elif cfg.base == "fusion":
        feats = {"orig": fused_features(fs, cache)}
    elif cfg.base_stage != "stem":
        tensor = heads.base_output_tensor(cfg.base_stage)
        feats = {"orig": base_features(fs, [tensor], False, cache)[tensor]}
        if cfg.flip:
            feats["flip"] = base_features(fs, [tensor], True, cache)[tensor]
    inputs = _Inputs(fs, cfg, feats)
    x_val = feats["orig"] if feats is not None else fs.faces

    if resume and last_path.exists():
        model = keras.saving.load_model(last_path)
        embedding = model.get_layer("embedding")
        state = json.loads(state_path.read_text())
        print(f"resuming {run_dir} after epoch {state['epoch']}")
    else:
        model, embedding = build_models(cfg)
        state = {"epoch": 0, **validate(embedding, x_val, splits.val_pairs), "history": []}
        state.update(best_epoch=0, best_val_auc=state["val_auc"], bad_epochs=0, seconds=0.0)
        save_atomic(run_dir / "best_embedding.keras", embedding.save)
        print(f"epoch 0 (pretrained, before training): val AUC {state['val_auc']:.4f}, "
              f"accuracy {state['val_accuracy']:.4f}")

    callbacks = epoch_loggers(run_dir, append=True, say=print if state["epoch"] == 0 else None)
    # validation runs first, so the CSV and TensorBoard callbacks log its metrics too
    validation = _validation_callback(embedding, x_val, splits.val_pairs)
    t0 = time.time() - state["seconds"]
    for epoch in range(state["epoch"], cfg.epochs):
        if state["bad_epochs"] >= cfg.patience:
            print(f"early stop: no better val AUC for {cfg.patience} epochs")
            break
        plan = _epoch_plan(cfg, fs, splits, epoch)
        hist = model.fit(_make_dataset(plan, epoch, inputs, cfg), initial_epoch=epoch, epochs=epoch + 1,
                         callbacks=[validation, *callbacks], verbose=1 if sys.stdout.isatty() else 2)
        val = validation.last
        improved = val["val_auc"] > state["best_val_auc"]
        state.update(epoch=epoch + 1, **val, seconds=time.time() - t0)
        state["history"].append({"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]), **val})
        if improved:
            state.update(best_epoch=epoch + 1, best_val_auc=val["val_auc"], bad_epochs=0)
            save_atomic(run_dir / "best_embedding.keras", embedding.save)
        else:
            state["bad_epochs"] += 1
        save_atomic(last_path, model.save)
        write_json_atomic(state_path, state)
        print(f"epoch {epoch + 1}/{cfg.epochs}: loss {hist.history['loss'][-1]:.4f}  val AUC {val['val_auc']:.4f}  "
              f"acc {val['val_accuracy']:.4f}  TAR@1e-3 {val['val_tar_at_far_1e3']:.3f}"
              f"{'  *best*' if improved else ''}  ({state['seconds'] / 60:.1f} min)")
    write_json_atomic(state_path, state)
    return state


def _validation_callback(embedding, x_val, pairs):
    """Keras callback: validation-pair metrics of the embedding at each epoch end, added to the logs."""
    import keras

    class Validation(keras.callbacks.Callback):
        last: dict = {}

        def on_epoch_end(self, epoch, logs=None):
            self.last = validate(embedding, x_val, pairs)
            if logs is not None:
                logs.update(self.last)

    return Validation()
