"""Koch et al. (2015) network: exact size, initialisation, L1 layer, layer-wise SGD."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.omniglot.layers import L1Distance
from model.omniglot.nets import Tower, build_siamese, build_triplet_net
from model.omniglot.train import LayerwiseSGD


@pytest.fixture(scope="module")
def paper_net():
    keras.utils.set_random_seed(0)
    return build_siamese()  # 105x105, the paper's layout


def test_parameter_count_is_the_papers(paper_net):
    assert paper_net.count_params() == 38_951_745
    emb = paper_net.get_layer("embedding")
    assert emb.output.shape[-1] == 4096
    assert emb.get_layer("flatten").output.shape[-1] == 9216  # 6 x 6 x 256


def test_paper_initialisation_and_l2(paper_net):
    emb = paper_net.get_layer("embedding")
    w, b = emb.get_layer("conv2").get_weights()
    assert abs(w.std() - 1e-2) < 1e-3 and abs(b.mean() - 0.5) < 5e-3
    w, b = emb.get_layer("dense").get_weights()
    assert abs(w.std() - 0.2) < 2e-3 and abs(b.mean() - 0.5) < 2e-3
    assert all(emb.get_layer(f"conv{i}").kernel_regularizer is not None for i in range(1, 5))
    assert emb.get_layer("dense").kernel_regularizer is not None


def test_koch2015_net_does_one_training_step(paper_net):
    from model.omniglot.config import resolve
    from model.omniglot.train import compile_model

    cfg = resolve("koch2015")
    net = build_siamese()
    compile_model(net, cfg)
    x = np.random.default_rng(0).random((2, 105, 105, 1)).astype("float32")
    before = net.get_layer("head").get_weights()[0].copy()
    logs = net.train_on_batch([x, x[::-1]], np.array([[1.0], [0.0]]), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert not np.allclose(before, net.get_layer("head").get_weights()[0])


def test_twins_share_weights_and_l1_is_symmetric():
    keras.utils.set_random_seed(1)
    net = build_siamese(Tower(28, 0.25, (3, 3, 2, 2), 32))
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    y = np.random.default_rng(1).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(net.predict([x, y], verbose=0), net.predict([y, x], verbose=0), rtol=1e-5)
    # one embedding object serves both inputs
    assert sum(isinstance(layer, keras.Model) and layer.name == "embedding" for layer in net.layers) == 1


def test_l1_distance_layer_is_registered_and_round_trips():
    layer = L1Distance(name="d")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, L1Distance)
    out = clone([np.array([[1.0, -2.0]]), np.array([[0.5, 1.0]])])
    np.testing.assert_allclose(np.asarray(out), [[0.5, 3.0]])


def test_triplet_net_outputs_unit_vectors():
    keras.utils.set_random_seed(2)
    net = build_triplet_net(Tower(28, 0.25, (3, 3, 2, 2), 32))
    z = net.predict(np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32"), verbose=0)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_layerwise_sgd_decay_and_momentum_ramp():
    inputs = keras.Input((2,))
    out = keras.layers.Dense(1, use_bias=False, name="prediction", kernel_initializer="zeros")(inputs)
    model = keras.Model(inputs, out)
    opt = LayerwiseSGD(layer_lrs=(0, 0, 0, 0, 0, 0.1), layer_momenta=(0.9,) * 6,
                       momentum_start=0.5, ramp_epochs=20, decay=0.99)
    var = model.trainable_variables[0]
    g = np.ones((2, 1), np.float32)
    opt.apply_gradients([(g, var)])  # epoch 0: v = -0.1 g
    np.testing.assert_allclose(np.asarray(var), -0.1, rtol=1e-6)
    opt.set_epoch(10)  # lr 0.1 * 0.99^10, momentum 0.5 + 0.4 * 10/20 = 0.7
    opt.apply_gradients([(g, var)])
    v2 = 0.7 * -0.1 - 0.1 * 0.99**10
    np.testing.assert_allclose(np.asarray(var), -0.1 + v2, rtol=1e-5)


def test_batch_norm_tower_trains_with_layerwise_sgd():
    keras.utils.set_random_seed(2)
    net = build_siamese(Tower(28, 0.25, (3, 3, 2, 2), 32, init="he", batch_norm=True))
    emb = net.get_layer("embedding")
    bns = [layer.name for layer in emb.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns == ["conv1_bn", "conv2_bn", "conv3_bn", "conv4_bn"]
    assert all(emb.get_layer(f"conv{i}").activation.__name__ == "linear" for i in range(1, 5))
    opt = LayerwiseSGD(layer_lrs=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6))
    net.compile(optimizer=opt, loss="binary_crossentropy")
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    net.fit([x, x[::-1]], np.ones((8, 1), "float32"), epochs=1, verbose=0)  # every variable has a rate
    gamma = next(v for v in net.trainable_variables if v.path.startswith("conv3_bn"))
    assert opt._layer_of[opt._get_variable_index(gamma)] == 2  # conv3's rate


def test_in_batch_siamese_scores_every_pair_with_the_papers_head():
    from model.omniglot.nets import Tower, build_in_batch_siamese

    keras.utils.set_random_seed(2)
    net = build_in_batch_siamese(Tower(28, 0.25, (3, 3, 2, 2), 32, init="he"))
    x = np.random.default_rng(3).random((6, 28, 28, 1)).astype("float32")
    p = net.predict(x, verbose=0)
    assert p.shape == (6, 6)
    h = net.get_layer("embedding").predict(x, verbose=0)
    head = net.get_layer("head")
    for i, j in ((0, 1), (4, 2), (5, 5)):
        pair = head.predict([h[i:i + 1], h[j:j + 1]], verbose=0)[0, 0]
        np.testing.assert_allclose(p[i, j], pair, rtol=1e-5)
    np.testing.assert_allclose(p, p.T, rtol=1e-5)  # L1 is symmetric, so is the matrix


def test_in_batch_pair_bce_weights_positives_and_negatives_half_and_half():
    from model.omniglot.train import InBatchPairBCE

    labels = np.array([0, 0, 1, 1, 1, 2])
    p = np.random.default_rng(4).uniform(0.05, 0.95, (6, 6)).astype("float32")
    same = labels[:, None] == labels[None, :]
    pos = same & ~np.eye(6, dtype=bool)  # the diagonal (an image with itself) is no pair
    expected = 0.5 * (-np.log(p[pos]).mean() - np.log(1 - p[~same]).mean())
    np.testing.assert_allclose(float(InBatchPairBCE()(labels, p)), expected, rtol=1e-5)
    # a perfect matrix costs (almost) nothing; one that swaps same and different a lot
    perfect = np.where(same, 1.0, 0.0).astype("float32")
    assert float(InBatchPairBCE()(labels, perfect)) < 1e-5
    assert float(InBatchPairBCE()(labels, 1.0 - perfect)) > 10.0


def test_in_batch_siamese_trains_with_the_paper_loss_and_reloads(tmp_path):
    from model.omniglot.config import resolve
    from model.omniglot.nets import build_from_config
    from model.omniglot.train import compile_model

    cfg = resolve("smoke", ["pairs=in_batch"])
    net = build_from_config(cfg)
    assert net.name == "in_batch_siamese"
    compile_model(net, cfg)
    x = np.random.default_rng(5).random((8, 28, 28, 1)).astype("float32")
    before = net.get_layer("head").get_weights()[0].copy()
    logs = net.train_on_batch(x, np.repeat(np.arange(4), 2), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert not np.allclose(before, net.get_layer("head").get_weights()[0])
    net.save_weights(tmp_path / "w.weights.h5")
    again = build_from_config(cfg)
    again.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(again.predict(x, verbose=0), net.predict(x, verbose=0), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown pairs"):
        compile_model(build_from_config(cfg), resolve("smoke", ["pairs=all"]))
