"""Training loop for the Omniglot siamese net (Koch et al. 2015) and its triplet variant.

A run directory (runs/omniglot/<name>/) holds:
  config.json           the resolved OmniglotConfig
  last.weights.h5       weights and optimizer variables after the latest epoch (resume)
  best.weights.h5       weights of the best validation one-shot accuracy (early stopping)
  state.json            epoch, best accuracy/epoch, history, elapsed seconds
  log.csv               per-epoch loss and validation accuracy
  tb/                   TensorBoard logs (when the `tensorboard` package is installed)
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
from keras import ops
from tqdm.auto import tqdm

from model.common.checkpoints import save_atomic, write_json_atomic
from model.common.epoch_logs import epoch_loggers
from model.common.losses import TripletSemiHardLoss
from model.omniglot import augment
from model.omniglot import data as om
from model.omniglot import evaluate as ev
from model.omniglot import tasks as oneshot
from model.omniglot.config import OmniglotConfig
from model.omniglot.nets import build_from_config

# ----------------------------------------------------------------------------- optimiser

LAYER_KEYS = ("conv1", "conv2", "conv3", "conv4", "dense", "prediction")


@keras.saving.register_keras_serializable(package="omniglot")
class LayerwiseSGD(keras.optimizers.Optimizer):
    """The paper's optimiser: SGD with momentum, a learning rate and a final momentum per layer.

    At epoch e (set from outside through `set_epoch`), layer j uses
        lr_j(e) = lr_j * decay^e                       (1 % decay per epoch: decay = 0.99)
        mu_j(e) = mu0 + (mu_j - mu0) * min(1, e / ramp)  (linear momentum ramp)
        v <- mu_j(e) v - lr_j(e) g;   w <- w + v
    Variables are matched to layers by their path (conv1 ... conv4, dense, prediction).
    """

    def __init__(
        self,
        layer_lrs=(1e-2,) * 6,
        layer_momenta=(0.9,) * 6,
        momentum_start: float = 0.5,
        ramp_epochs: int = 20,
        decay: float = 0.99,
        name: str = "layerwise_sgd",
        **kwargs,
    ):
        kwargs.pop("learning_rate", None)
        super().__init__(learning_rate=1.0, name=name, **kwargs)
        self.layer_lrs = tuple(float(x) for x in layer_lrs)
        self.layer_momenta = tuple(float(x) for x in layer_momenta)
        self.momentum_start = float(momentum_start)
        self.ramp_epochs = int(ramp_epochs)
        self.decay = float(decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.epoch = self.add_variable((), initializer="zeros", dtype="float32", name="epoch")
        self.velocities = [self.add_variable_from_reference(v, "velocity") for v in variables]
        self._layer_of = [self._layer_index(v) for v in variables]

    @staticmethod
    def _layer_index(variable) -> int:
        parts = variable.path.split("/")
        for j, key in enumerate(LAYER_KEYS):
            if any(p == key or p.startswith(key + "_") for p in parts):  # conv1, conv1_bn
                return j
        raise ValueError(f"no layer-wise rate for variable {variable.path}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch.assign(float(epoch))

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        j = self._layer_of[i]
        lr = self.layer_lrs[j] * ops.power(self.decay, self.epoch)
        ramp = ops.minimum(1.0, self.epoch / max(self.ramp_epochs, 1))
        mu = self.momentum_start + (self.layer_momenta[j] - self.momentum_start) * ramp
        v = self.velocities[i]
        self.assign(v, ops.cast(mu, v.dtype) * v - ops.cast(lr, v.dtype) * gradient)
        self.assign_add(variable, v)

    def get_config(self):
        return {
            **super().get_config(),
            "layer_lrs": self.layer_lrs,
            "layer_momenta": self.layer_momenta,
            "momentum_start": self.momentum_start,
            "ramp_epochs": self.ramp_epochs,
            "decay": self.decay,
        }


def make_optimizer(cfg: OmniglotConfig) -> keras.optimizers.Optimizer:
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(cfg.lr)
    if cfg.optimizer == "sgd":
        return LayerwiseSGD(
            cfg.layer_lrs, cfg.layer_momenta, cfg.momentum_start, cfg.momentum_ramp_epochs, cfg.lr_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


@keras.saving.register_keras_serializable(package="omniglot")
class InBatchPairBCE(keras.losses.Loss):
    """The paper's binary cross-entropy over every pair of a class batch (i != j).

    y_true: (B,) class labels; y_pred: (B, B) P(same) from `nets.build_in_batch_siamese`.
    Positives and negatives are weighted half and half, as the paper's balanced pairs
    are (a 32 x 4 batch has 384 positive and 15,872 negative ordered pairs):
        L = 1/2 mean_{same, i != j} -log p_ij + 1/2 mean_{different} -log(1 - p_ij)
    """

    def __init__(self, name: str = "in_batch_pair_bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        labels = ops.reshape(y_true, (-1,))
        same = ops.cast(ops.equal(labels[:, None], labels[None, :]), y_pred.dtype)
        off_diagonal = 1.0 - ops.eye(ops.shape(labels)[0], dtype=y_pred.dtype)
        pos, neg = same * off_diagonal, 1.0 - same
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        pos_loss = ops.sum(-ops.log(p) * pos) / ops.maximum(ops.sum(pos), 1.0)
        neg_loss = ops.sum(-ops.log(1.0 - p) * neg) / ops.maximum(ops.sum(neg), 1.0)
        return 0.5 * (pos_loss + neg_loss)


def compile_model(model: keras.Model, cfg: OmniglotConfig) -> None:
    objective = cfg.objective
    if objective.name == "in_batch_siamese":
        model.compile(optimizer=make_optimizer(cfg), loss=InBatchPairBCE())
    elif objective.triplet:
        model.compile(optimizer=make_optimizer(cfg), loss=TripletSemiHardLoss(cfg.triplet_margin))
    else:
        # L = -[y log p + (1 - y) log(1 - p)] + sum_j lambda_j ||W_j||^2 (the per-layer
        # L2 terms come from the layers' kernel_regularizer and are added by Keras)
        model.compile(
            optimizer=make_optimizer(cfg), loss=keras.losses.BinaryCrossentropy(), metrics=["accuracy"]
        )


# ----------------------------------------------------------------------------- batches


class PairBatches(keras.utils.PyDataset):
    """Balanced pair batches from the train split, optionally affinely distorted.

    Batch i of epoch e is a pure function of (seed, e, i), so a resumed or repeated run
    sees the same data. With `train_pairs` > 0 the pairs come from a fixed pool (the
    paper's 30k/90k/150k pairs), otherwise they are drawn fresh each batch; each image
    is distorted with probability `distort_prob` (the paper's 8 distortions per pair
    means 8/9 of what it trained on was distorted).
    """

    def __init__(self, split: om.Split, cfg: OmniglotConfig):
        super().__init__(workers=1, use_multiprocessing=False)
        self.flat = split.flat_images().astype(np.float32) / 255.0
        self.split, self.cfg, self.epoch = split, cfg, 0
        self.pool = None
        if cfg.train_pairs > 0:
            self.pool = om.sample_pairs(
                split, cfg.train_pairs, np.random.default_rng([cfg.seed, 1]), cfg.within_alphabet_negatives
            )

    def __len__(self) -> int:
        return max(1, self.cfg.pairs_per_epoch // self.cfg.batch_size)

    def __getitem__(self, i: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 2, self.epoch, i])
        if self.pool is None:
            left, right, same = om.sample_pairs(self.split, cfg.batch_size, rng, cfg.within_alphabet_negatives)
        else:
            pick = rng.integers(0, len(self.pool[0]), cfg.batch_size)
            left, right, same = (a[pick] for a in self.pool)
        a = augment.distort(self.flat[left], rng, cfg.distort_prob)
        b = augment.distort(self.flat[right], rng, cfg.distort_prob)
        return (a[..., None], b[..., None]), same.astype(np.float32)[:, None]


class TripletBatches(PairBatches):
    """P classes x K drawers per batch, labels = character index: for the triplet loss and
    the in-batch siamese. With `batch_alphabets` = A > 0 the P classes come from A random
    alphabets (P / A each), so most of a batch's negatives share an alphabet."""

    def __init__(self, split: om.Split, cfg: OmniglotConfig):
        super().__init__(split, replace_pool(cfg))
        self.by_alphabet = [np.flatnonzero(split.char_alphabet == a) for a in range(len(split.alphabets))]

    def classes(self, rng: np.random.Generator, p: int) -> np.ndarray:
        a = self.cfg.batch_alphabets
        if a <= 0:
            return rng.choice(self.split.n_chars, p, replace=False)
        picked = rng.choice(len(self.by_alphabet), min(a, len(self.by_alphabet)), replace=False)
        share = -(-p // len(picked))  # ceil: the last alphabet may give fewer
        chars = [rng.choice(self.by_alphabet[j], min(share, len(self.by_alphabet[j])), replace=False)
                 for j in picked]
        chars = np.concatenate(chars)[:p]
        if len(chars) < p:  # alphabets too small: top up from all characters
            rest = np.setdiff1d(np.arange(self.split.n_chars), chars)
            chars = np.concatenate([chars, rng.choice(rest, p - len(chars), replace=False)])
        return chars

    def __getitem__(self, i: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 3, self.epoch, i])
        p = cfg.triplet_classes_per_batch
        k = max(2, cfg.batch_size // p)
        chars = self.classes(rng, p)
        drawers = np.stack([rng.choice(self.split.n_drawers, k, replace=False) for _ in range(p)])
        idx = (chars[:, None] * self.split.n_drawers + drawers).ravel()
        x = augment.distort(self.flat[idx], rng, cfg.distort_prob)
        return x[..., None], np.repeat(chars, k).astype(np.int32)


def replace_pool(cfg: OmniglotConfig) -> OmniglotConfig:
    return replace(cfg, train_pairs=0)  # triplet batches are built from classes, not pairs


# ----------------------------------------------------------------------------- validation


@dataclass
class Validator:
    """20-way within-alphabet one-shot accuracy on the validation split (early stopping)."""

    split: om.Split
    tasks: oneshot.TaskSet
    cfg: OmniglotConfig

    @classmethod
    def build(cls, split: om.Split, cfg: OmniglotConfig) -> Validator:
        return cls(split, oneshot.make_tasks(split, 20, cfg.val_tasks, True, seed=cfg.seed + 1000), cfg)

    def __call__(self, model: keras.Model) -> float:
        method = ev.model_method(model, self.cfg, "pairwise")  # the objective's own scorer
        feats = method.featurize(self.split.flat_images())
        return ev.oneshot_accuracy(feats, feats, self.tasks, method.score)


# ----------------------------------------------------------------------------- callbacks


def adam_rate(cfg: OmniglotConfig, epoch: int) -> float:
    """Adam's rate for 0-based `epoch`: constant until `adam_decay_start`, then exponential."""
    return cfg.lr * cfg.adam_decay ** max(0, epoch - cfg.adam_decay_start)


# A resumed run may change only these fields: each leaves the epochs already run as they were
# (the decay fields only when the decay starts at or after the saved epoch), so a run extended
# this way is the run its new config.json describes.
EXTENDABLE = ("time_budget_min", "epochs", "patience", "adam_decay", "adam_decay_start")


def extension(saved: OmniglotConfig, cfg: OmniglotConfig, epoch: int) -> dict:
    """The fields `cfg` changes against the run's `saved` config at `epoch`, or ValueError
    when a change would rewrite the epochs already run."""
    changed = {k: getattr(cfg, k) for k in saved.__dataclass_fields__ if getattr(saved, k) != getattr(cfg, k)}
    fixed = sorted(set(changed) - set(EXTENDABLE))
    if fixed:
        raise ValueError(f"resume changes {fixed}: only {list(EXTENDABLE)} may change on resume")
    def decays_before(c: OmniglotConfig) -> bool:
        return c.adam_decay != 1.0 and c.adam_decay_start < epoch

    # a changed schedule must leave the epochs already run at a constant rate in both configs
    if {"adam_decay", "adam_decay_start"} & set(changed) and (decays_before(saved) or decays_before(cfg)):
        raise ValueError(f"adam_decay={cfg.adam_decay}, adam_decay_start={cfg.adam_decay_start} would change "
                         f"the rates of the {epoch} epochs already run; start the new decay at or after them")
    return changed


class EpochControl(keras.callbacks.Callback):
    """Per epoch: feed the epoch to data and optimiser, show a tqdm bar, validate, checkpoint,
    stop early (patience or time budget)."""

    def __init__(self, run: RunDir, cfg, data, validator, state, started, verbose=True):
        super().__init__()
        self.run, self.cfg, self.data, self.validator = run, cfg, data, validator
        self.state, self.started, self.verbose = state, started, verbose
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.data.epoch = epoch
        if isinstance(self.model.optimizer, LayerwiseSGD):
            self.model.optimizer.set_epoch(epoch)
        elif self.cfg.optimizer == "adam" and self.cfg.adam_decay != 1.0:
            # set from the epoch alone, so a resumed run continues the same schedule
            self.model.optimizer.learning_rate.assign(adam_rate(self.cfg, epoch))
        self.bar = tqdm(total=len(self.data), desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                        disable=not self.verbose, leave=False, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.4f}",
                             best_val=f"{self.state['best_val']:.3f}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.bar.close()
        val = self.validator(self.model)
        logs["val_oneshot20_within"] = val  # TensorBoard picks this up (it runs after us)
        elapsed = self.state["elapsed_before"] + time.time() - self.started
        st = self.state
        st["epoch"] = epoch + 1
        st["elapsed_s"] = elapsed
        st["history"].append({"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)), "val": val,
                              "elapsed_s": round(elapsed, 1)})
        if val > st["best_val"]:
            st["best_val"], st["best_epoch"] = val, epoch + 1
            save_atomic(self.run.best, self.model.save_weights)
        save_atomic(self.run.last, self.model.save_weights)  # the compiled optimizer's variables too
        self.run.save_state(st)
        if self.verbose:
            tqdm.write(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}  "
                       f"val 20-way within-alphabet {val:.3f} (best {st['best_val']:.3f} @ {st['best_epoch']})  "
                       f"{elapsed / 60:.1f} min")
        out_of_time = self.cfg_budget_s and elapsed > self.cfg_budget_s
        if epoch + 1 - st["best_epoch"] >= self.cfg.patience or out_of_time:
            st["stopped"] = "time budget" if out_of_time else "early stopping"
            self.run.save_state(st)
            self.model.stop_training = True

    @property
    def cfg_budget_s(self) -> float:
        return 60.0 * self.cfg.time_budget_min


# ----------------------------------------------------------------------------- run directory


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def last(self) -> Path:
        return self.path / "last.weights.h5"

    @property
    def best(self) -> Path:
        return self.path / "best.weights.h5"

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    def save_state(self, state: dict) -> None:
        write_json_atomic(self.state, state, indent=1)

    def load_state(self) -> dict:
        return json.loads(self.state.read_text())

    def load_last(self, model: keras.Model) -> None:
        """Weights and optimizer state of the latest epoch. The optimizer is built first, so
        Keras restores its variables; a checkpoint whose optimizer does not match is an error
        (Keras would only warn and skip it)."""
        model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="Skipping variable loading for optimizer")
            model.load_weights(self.last)


def load_trained(run_dir: Path, which: str = "best") -> tuple[keras.Model, OmniglotConfig]:
    """Rebuild a run's net from its config.json and load its best (or last) weights."""
    run = RunDir(Path(run_dir))
    cfg = OmniglotConfig.load(run.config)
    model = build_from_config(cfg)
    model.load_weights(run.best if which == "best" and run.best.exists() else run.last)
    return model, cfg


# ----------------------------------------------------------------------------- entry


def train(
    cfg: OmniglotConfig, run_dir: Path, data_dir: Path | None = None, resume: bool = False,
    verbose: bool = True, tensorboard: bool = True,
) -> dict:
    """Train per `cfg` into `run_dir`; returns the final state (best validation accuracy ...)."""
    run = RunDir(Path(run_dir))
    run.path.mkdir(parents=True, exist_ok=True)
    resumed = run.load_state() if resume and run.state.exists() else None
    changed = extension(OmniglotConfig.load(run.config), cfg, resumed["epoch"]) if resumed else {}
    keras.utils.set_random_seed(cfg.seed)  # once: Python, NumPy and backend seeds
    bg = om.load_set("background", cfg.image_size, data_dir)
    evs = om.load_set("evaluation", cfg.image_size, data_dir)
    splits = om.paper_splits(bg, evs)
    splits["train"] = om.with_transformed_classes(splits["train"], cfg.transform_classes)

    model = build_from_config(cfg)
    compile_model(model, cfg)
    data = (TripletBatches if cfg.objective.class_batches else PairBatches)(splits["train"], cfg)
    state = {"epoch": 0, "best_val": -1.0, "best_epoch": 0, "history": [], "elapsed_s": 0.0}
    if resumed:
        state = resumed
        run.load_last(model)
        if changed:  # a longer budget (or a later decay) lets a stopped run go on
            state.setdefault("extensions", []).append({"at_epoch": state["epoch"], **changed})
            if state.get("stopped") in ("time budget", "max epochs") or "patience" in changed:
                state.pop("stopped", None)
            run.config.write_text(cfg.to_json())
            run.save_state(state)
        if state.get("stopped"):
            return state
    else:
        run.config.write_text(cfg.to_json())
    state["elapsed_before"] = state.get("elapsed_s", 0.0)

    control = EpochControl(run, cfg, data, Validator.build(splits["validation"], cfg), state,
                           time.time(), verbose)
    callbacks = [control, *epoch_loggers(run.path, append=resume, tensorboard=tensorboard,
                                         say=tqdm.write if verbose else None)]
    if state["epoch"] < cfg.epochs:
        model.fit(data, epochs=cfg.epochs, initial_epoch=state["epoch"], callbacks=callbacks, verbose=0)
    state.pop("elapsed_before", None)
    state.setdefault("stopped", "max epochs")
    run.save_state(state)
    return state
