"""Fine-tuning smoke test on a tiny real subset (Yale faces): the loss falls, runs resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.common import paths
from model.faces import train as finetune
from model.faces.augment import augment_images
from model.faces.config import apply_overrides, resolve
from model.faces.faceset import yale_faces
from tests.conftest import require_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def yale():
    require_data(paths.data_dir() / "yalefaces")
    return yale_faces()  # detections and aligned faces cached under var/cache


def test_pair_objective_loss_falls_and_run_resumes(yale, tmp_path):
    cfg = resolve("smoke", ["objective=pairs", "epochs=2"])
    run = tmp_path / "pairs"
    state = finetune.train(cfg, yale, run)
    losses = [h["loss"] for h in state["history"]]
    assert len(losses) == 2 and losses[-1] < losses[0]
    for name in ("config.json", "state.json", "last.keras", "best_embedding.keras", "log.csv"):
        assert (run / name).exists(), name

    # a fresh start over an existing run is refused; --resume continues after epoch 2
    with pytest.raises(FileExistsError):
        finetune.train(cfg, yale, run)
    resumed = finetune.train(apply_overrides(cfg, ["epochs=3"]), yale, run, resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert json.loads((run / "state.json").read_text())["epoch"] == 3


def test_triplet_objective_on_last_block_loss_falls(yale, tmp_path):
    """Block8 + bottleneck trainable on cached block8_5 features, 128-D projection."""
    cfg = resolve("smoke", ["base_stage=Block8", "embedding_dim=128", "epochs=2", "lr=3e-4"])
    state = finetune.train(cfg, yale, tmp_path / "block8")
    losses = [h["loss"] for h in state["history"]]
    assert losses[-1] < losses[0]
    assert 0.5 < state["best_val_auc"] <= 1.0


def test_image_augmentation_keeps_shape_and_changes_pixels():
    from model.faces.config import FaceTuneConfig

    faces = np.random.default_rng(0).integers(0, 255, (4, 160, 160, 3), dtype=np.uint8)
    cfg = FaceTuneConfig(base_stage="stem", flip=True, affine=True, color_jitter=True)
    out = augment_images(faces, np.random.default_rng(1), cfg)
    assert out.shape == faces.shape and out.dtype == np.uint8
    assert not np.array_equal(out, faces)


def test_end_to_end_mode_trains_on_images(yale, tmp_path):
    """The trainable-base-blocks mode (meant for a GPU) runs one tiny step on CPU."""
    cfg = resolve("gpu-blocks", ["max_train_identities=4", "max_images_per_identity=4", "eval_pairs=10",
                                 "epochs=1", "batch_size=8", "identities_per_batch=4",
                                 "triplet_batches_per_epoch=1", "trainable_from=Block8"])
    state = finetune.train(cfg, yale, tmp_path / "e2e")
    assert state["epoch"] == 1 and np.isfinite(state["history"][0]["loss"])


def test_config_rejects_pixel_augmentation_on_cached_features():
    with pytest.raises(ValueError, match="stem"):
        resolve("triplet", ["affine=true"])
