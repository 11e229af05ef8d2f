"""Fine-tuning on the frozen SFace port: the head starts as the base itself, saves without custom
layers (the service loads it without model/), and a smoke run on real Yale faces trains."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.faces import train as finetune
from model.faces.config import resolve
from model.faces.sface import arcface_template, build_sface_embedding

pytestmark = pytest.mark.slow


def test_head_starts_at_the_base_embedding_and_loads_with_plain_keras(tmp_path):
    head = build_sface_embedding(128)
    x = np.random.default_rng(0).normal(size=(5, 128)).astype(np.float32)
    expected = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(head.predict_on_batch(x), expected, atol=1e-6)
    head.save(tmp_path / "head.keras")
    loaded = keras.saving.load_model(tmp_path / "head.keras", compile=False)  # no custom_objects
    np.testing.assert_allclose(loaded.predict_on_batch(x), expected, atol=1e-6)


def test_sface_config_refuses_what_cached_features_cannot_do():
    with pytest.raises(ValueError, match="base='sface'"):
        resolve("sface-triplet", ["base_stage=Block8"])
    with pytest.raises(ValueError, match="base must be"):
        resolve("triplet", ["base=vgg"])


def test_sface_pair_head_smoke_run_on_real_faces(tmp_path):
    from model.faces.faceset import yale_faces

    yale = yale_faces(template=arcface_template())
    assert yale.faces.shape[1:] == (112, 112, 3) and yale.usable.sum() >= 150
    # the pair objective: SFace already separates Yale, so semi-hard triplets (margin 0.2) give a
    # zero loss here, while the pair head's cross-entropy has something to learn
    cfg = resolve("smoke", ["base=sface", "embedding_dim=128", "epochs=2", "objective=pairs"])
    state = finetune.train(cfg, yale, tmp_path / "run")
    losses = [h["loss"] for h in state["history"]]
    assert len(losses) == 2 and losses[-1] < losses[0]
    head = keras.saving.load_model(tmp_path / "run" / "best_embedding.keras", compile=False)
    assert head.output_shape == (None, 128)
