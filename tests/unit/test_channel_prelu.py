"""ChannelPReLU (max(x, slope * x)) equals Keras' PReLU for every slope <= 1, negative ones
included, and survives a save/load round trip under its registered name."""

from __future__ import annotations

import keras
import numpy as np

from app.inference.layers import ChannelPReLU


def _pair(slopes: np.ndarray):
    ours, ref = ChannelPReLU(), keras.layers.PReLU(shared_axes=[1, 2])
    ours.build((None, 4, 4, len(slopes)))
    ref.build((None, 4, 4, len(slopes)))
    ours.set_weights([slopes])
    ref.set_weights([slopes.reshape(1, 1, -1)])
    return ours, ref


def test_equals_keras_prelu_for_slopes_up_to_one():
    slopes = np.array([-0.8, -0.1, 0.0, 0.25, 0.9, 1.0], np.float32)
    x = np.random.default_rng(0).normal(size=(3, 4, 4, len(slopes))).astype(np.float32)
    ours, ref = _pair(slopes)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=0, atol=1e-6)


def test_differs_from_prelu_for_a_slope_above_one():
    """Why the SFace port negates such channels instead of using the layer on them directly."""
    slopes = np.array([1.1], np.float32)
    x = np.array([-1.0, 2.0], np.float32).reshape(2, 1, 1, 1)
    ours, ref = _pair(slopes)
    assert np.allclose(np.asarray(ref(x)).ravel(), [-1.1, 2.0])
    assert np.allclose(np.asarray(ours(x)).ravel(), [-1.0, 2.2])


def test_saves_and_loads_under_its_registered_name(tmp_path):
    inputs = keras.Input((4, 4, 2))
    layer = ChannelPReLU(name="act")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.array([0.5, -0.3], np.float32)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=0, atol=0)
