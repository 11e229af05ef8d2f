"""End to end: config overrides, the smoke preset beating chance, seeds, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.omniglot import evaluate as ev
from model.omniglot.config import PRESETS, OmniglotConfig, apply_overrides, resolve
from model.omniglot.train import adam_rate, load_trained, train
from tests.chance import chance_ceiling


def test_overrides_parse_to_the_field_types():
    cfg = resolve("cpu", ["image_size=64", "layer_lrs=1e-3,2e-3", "distort_prob=0.25", "loss=triplet",
                          "eval_ways=2,20", "pairs_per_epoch=1e4"])
    assert cfg.image_size == 64 and cfg.layer_lrs == (1e-3, 2e-3) and cfg.distort_prob == 0.25
    assert cfg.loss == "triplet" and cfg.eval_ways == (2, 20) and cfg.pairs_per_epoch == 10000
    assert OmniglotConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError):
        apply_overrides(cfg, ["no_such_field=1"])
    with pytest.raises(ValueError):
        resolve("gpu9000")


def test_presets_build_the_intended_nets():
    from model.omniglot.nets import build_from_config

    assert resolve("koch2015").image_size == 105 and resolve("koch2015").dense_units == 4096
    assert build_from_config(resolve("smoke")).count_params() < 1_000_000


@pytest.mark.parametrize("loss,pairs,name,class_batches", [
    ("bce", "sampled", "siamese", False), ("bce", "in_batch", "in_batch_siamese", True),
    ("triplet", "sampled", "triplet", True), ("triplet", "in_batch", "triplet", True)])
def test_loss_and_pairs_decide_one_objective_that_the_net_follows(loss, pairs, name, class_batches):
    from model.omniglot.nets import build_from_config

    cfg = resolve("smoke", [f"loss={loss}", f"pairs={pairs}"])
    assert cfg.objective.name == name and cfg.objective.class_batches == class_batches
    assert cfg.objective.triplet == (loss == "triplet")
    assert build_from_config(cfg).name == name
    with pytest.raises(ValueError, match="unknown loss"):
        resolve("smoke", ["loss=hinge"]).objective


# The best recipes of docs/omniglot.md: (preset, net it builds, epochs, decay start)
BEST_RECIPES = [("cpu-triplet-best", "triplet", 101, 50),
                ("cpu-inbatch-rot", "in_batch_siamese", 86, 40),
                ("cpu-inbatch", "in_batch_siamese", 90, 48)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_named_preset_resolves_and_builds_its_net(name):
    from model.omniglot.nets import build_from_config

    cfg = resolve(name)
    assert cfg.preset == name  # a run's config.json names the preset it came from
    net = build_from_config(cfg)
    assert all(inp.shape[1:] == (cfg.image_size, cfg.image_size, 1) for inp in net.inputs)


@pytest.mark.parametrize("name,net_name,epochs,decay_start", BEST_RECIPES)
def test_best_recipes_stop_by_epochs_with_the_measured_schedule(name, net_name, epochs, decay_start):
    from model.omniglot.nets import build_from_config

    cfg = resolve(name)
    assert build_from_config(cfg).name == net_name
    assert cfg.time_budget_min == 0 and cfg.epochs == epochs and cfg.patience == 40
    assert cfg.adam_decay == 0.93 and cfg.adam_decay_start == decay_start
    assert adam_rate(cfg, decay_start) == cfg.lr  # constant up to the decay, then 7 % per epoch
    assert adam_rate(cfg, decay_start + 1) == pytest.approx(cfg.lr * 0.93)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, omniglot_28):
    run_dir = tmp_path_factory.mktemp("smoke")
    cfg = resolve("smoke")
    state = train(cfg, run_dir, verbose=False, tensorboard=False)
    return run_dir, cfg, state


def test_smoke_training_beats_chance_on_20_way(smoke_run):
    run_dir, cfg, state = smoke_run
    assert json.loads((run_dir / "config.json").read_text())["preset"] == "smoke"  # self-describing
    assert (run_dir / "best.weights.h5").exists() and state["epoch"] >= 1
    model, loaded_cfg = load_trained(run_dir)
    assert loaded_cfg == cfg
    tasks = 400
    data = ev.EvalData.load(cfg.image_size, (20,), tasks, 200)
    head = model.get_layer("head")
    emb = model.get_layer("embedding")
    f = ev.embed(emb, data.splits["test"].flat_images())
    acc = data.suite.accuracies(f, f, ev.siamese_scorer(head))
    lake = ev.lake_accuracy(data.runs, lambda im: ev.embed(emb, im), ev.siamese_scorer(head))
    # 20-way chance is 5 %; each score must sit above what chance reaches once in 10,000
    print(f"smoke: Lake {lake['percent_correct']:.2f} %, random-20 {acc['random'][20]:.3f}, "
          f"within-20 {acc['within_alphabet'][20]:.3f}; chance ceiling {chance_ceiling(tasks, 1 / 20):.3f}")
    assert lake["trials"] == 400 and lake["percent_correct"] / 100 > chance_ceiling(400, 1 / 20)
    assert acc["random"][20] > chance_ceiling(tasks, 1 / 20)
    assert acc["within_alphabet"][20] > chance_ceiling(tasks, 1 / 20)


def test_mnist_command_scores_a_seed_ensemble_beside_its_members(smoke_run, tmp_path):
    from model.__main__ import main

    run_dir = smoke_run[0]
    # two copies of one run: their ensemble must score exactly what the run scores alone
    main(["omniglot", "mnist", "--run-dir", str(run_dir), "--run-dir", str(run_dir), "--ensemble",
          "--tasks", "200", "--no-baselines", "--out-dir", str(tmp_path)])
    single = json.loads((tmp_path / f"{run_dir.name}.json").read_text())
    both = json.loads((tmp_path / f"{run_dir.name}+{run_dir.name}.json").read_text())
    assert both["method"].startswith("ensemble of 2") and both["tasks"] == single["tasks"] == 200
    # The ensemble of two identical members is the member. No claim about chance here: the
    # smoke preset's transfer to MNIST sits near 10 % (0.14 on one machine), and how near
    # depends on the float order of the machine's threads.
    assert both["accuracy"] == single["accuracy"]
    assert 0.0 <= single["accuracy"] <= 1.0 and (single["accuracy"] * 200) % 1 < 1e-9


def _micro(**kw):
    return apply_overrides(resolve("smoke"), ["pairs_per_epoch=256", "val_tasks=20",
                                              *[f"{k}={v}" for k, v in kw.items()]])


def test_same_seed_gives_the_same_numbers(tmp_path, omniglot_28):
    a = train(_micro(epochs=1), tmp_path / "a", verbose=False, tensorboard=False)
    b = train(_micro(epochs=1), tmp_path / "b", verbose=False, tensorboard=False)
    c = train(_micro(epochs=1, seed=5), tmp_path / "c", verbose=False, tensorboard=False)
    assert a["history"][0]["loss"] == b["history"][0]["loss"]
    assert a["history"][0]["val"] == b["history"][0]["val"]
    assert a["history"][0]["loss"] != c["history"][0]["loss"]


def test_resume_continues_where_it_stopped(tmp_path, omniglot_28):
    whole = train(_micro(epochs=2, patience=9), tmp_path / "whole", verbose=False, tensorboard=False)
    # the same run cut after one epoch, then resumed with the longer budget
    cut = train(_micro(epochs=1, patience=9), tmp_path / "cut", verbose=False, tensorboard=False)
    assert cut["stopped"] == "max epochs"
    resumed = train(_micro(epochs=2, patience=9), tmp_path / "cut", resume=True, verbose=False,
                    tensorboard=False)
    assert resumed["epoch"] == 2 and len(resumed["history"]) == 2
    assert resumed["extensions"] == [{"at_epoch": 1, "epochs": 2}]
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["epochs"] == 2
    np.testing.assert_allclose(resumed["history"][1]["loss"], whole["history"][1]["loss"], rtol=1e-4)


def test_a_decay_added_on_resume_gives_the_run_its_new_config_describes(tmp_path, omniglot_28):
    # epoch 0 runs at lr before the cut; epoch 1 still at lr (decay^0), epoch 2 at lr / 10
    decayed = dict(epochs=3, patience=9, adam_decay=0.1, adam_decay_start=1)
    whole = train(_micro(**decayed), tmp_path / "whole", verbose=False, tensorboard=False)
    train(_micro(epochs=1, patience=9), tmp_path / "cut", verbose=False, tensorboard=False)
    resumed = train(_micro(**decayed), tmp_path / "cut", resume=True, verbose=False, tensorboard=False)
    np.testing.assert_allclose([h["loss"] for h in resumed["history"]], [h["loss"] for h in whole["history"]],
                               rtol=1e-4)
    constant = train(_micro(epochs=3, patience=9), tmp_path / "constant", verbose=False, tensorboard=False)
    assert constant["history"][1]["loss"] == pytest.approx(whole["history"][1]["loss"], rel=1e-4)
    assert abs(constant["history"][2]["loss"] - whole["history"][2]["loss"]) > 1e-4  # the decay acted


def test_resume_refuses_changes_that_would_rewrite_the_epochs_already_run(tmp_path, omniglot_28):
    train(_micro(epochs=1, patience=9), tmp_path / "run", verbose=False, tensorboard=False)
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        train(_micro(epochs=2, patience=9, lr=0.01), tmp_path / "run", resume=True, verbose=False)
    with pytest.raises(ValueError, match="adam_decay_start=0"):
        train(_micro(epochs=2, patience=9, adam_decay=0.5), tmp_path / "run", resume=True, verbose=False)


def test_resume_refuses_to_move_a_decay_that_already_acted(tmp_path, omniglot_28):
    # epochs 1-2 ran with the rate decaying from epoch 1; a later start would rewrite them
    train(_micro(epochs=2, patience=9, adam_decay=0.5, adam_decay_start=0), tmp_path / "run", verbose=False,
          tensorboard=False)
    with pytest.raises(ValueError, match="adam_decay_start=5"):
        train(_micro(epochs=3, patience=9, adam_decay=0.5, adam_decay_start=5), tmp_path / "run", resume=True,
              verbose=False)


def test_adam_rate_is_constant_until_the_decay_starts():
    cfg = _micro(lr=0.01, adam_decay=0.5, adam_decay_start=3)
    assert [adam_rate(cfg, e) for e in range(6)] == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.005, 0.0025])


def test_tensorboard_logs_record_loss_and_validation_accuracy(tmp_path, omniglot_28):
    # the `test` extra brings the `train` extra, so tensorboard is installed
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    state = train(_micro(epochs=2, patience=9), tmp_path / "run", verbose=False)
    logs = {}
    for split in ("train", "validation"):  # keras files val_* metrics under validation/
        acc = EventAccumulator(str(tmp_path / "run" / "tb" / split))
        acc.Reload()
        logs[split] = {tag: [float(make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
                       for tag in acc.Tags()["tensors"] if tag.startswith("epoch_")}
    assert len(logs["train"]["epoch_loss"]) == 2
    np.testing.assert_allclose(logs["validation"]["epoch_oneshot20_within"],
                               [h["val"] for h in state["history"]], rtol=1e-6)



def test_adam_decay_sets_each_epochs_rate_from_the_epoch(tmp_path, omniglot_28, monkeypatch):
    import keras

    rates = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                rates.append(float(self.model.optimizer.learning_rate))

    real_fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, callbacks=(), **kw: real_fit(
        self, *a, callbacks=[*callbacks, Spy()], **kw))
    cfg = _micro(epochs=3, patience=9, adam_decay=0.5)
    train(cfg, tmp_path / "run", verbose=False, tensorboard=False)
    np.testing.assert_allclose(rates, [cfg.lr, cfg.lr / 2, cfg.lr / 4], rtol=1e-6)
    assert resolve("cpu").adam_decay == 1.0  # the presets keep a constant rate
