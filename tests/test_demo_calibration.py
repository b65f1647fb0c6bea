"""Temperature scaling recovers a known temperature; the Wilson interval matches published values."""

from __future__ import annotations

import numpy as np
import pytest

from services.demo import calibration


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 8)) * 2.0
    labels = np.array([rng.choice(8, p=p) for p in calibration.softmax(true_logits)])
    overconfident = true_logits * 3.0  # a model three times too sure of itself
    temperature = calibration.fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert calibration.nll(overconfident, labels, temperature) < calibration.nll(overconfident, labels)
    before = calibration.expected_calibration_error(calibration.softmax(overconfident), labels)
    after = calibration.expected_calibration_error(calibration.softmax(overconfident, temperature), labels)
    assert after < before / 2
    assert (calibration.softmax(overconfident, temperature).argmax(1) == overconfident.argmax(1)).all()


def test_logits_of_probabilities_give_the_same_softmax():
    probabilities = calibration.softmax(np.random.default_rng(1).normal(size=(5, 4)))
    assert np.allclose(calibration.softmax(calibration.logits_of(probabilities)), probabilities)


@pytest.mark.parametrize(("k", "n", "low", "high"), [(81, 263, 0.2553, 0.3662), (0, 10, 0.0, 0.2775),
                                                     (10, 10, 0.7225, 1.0)])
def test_wilson_interval_matches_published_values(k, n, low, high):
    got = calibration.wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-4)


def test_scaling_the_output_layer_is_temperature_scaling():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, activation="softmax", name="head_output")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(7, 6)).astype("float32")
    logits = x @ model.layers[-1].get_weights()[0] + model.layers[-1].get_weights()[1]
    calibration.scale_output_layer(model.get_layer("head_output"), 2.5)
    assert np.allclose(model.predict(x, verbose=0), calibration.softmax(logits, 2.5), atol=1e-5)
