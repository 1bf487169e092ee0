"""Temperature scaling, expected calibration error and reliability-diagram data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from serkit.errors import ConfigError
from serkit.models.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_table,
)


def test_ece_and_reliability_table_by_hand():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.65, 0.35], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])  # every prediction is class 0; the 0.7 one is wrong
    table = reliability_table(probs, labels, n_bins=5)
    assert table["count"].tolist() == [0, 0, 1, 2, 1]
    np.testing.assert_allclose(table["confidence"].iloc[2:], [0.55, 0.675, 0.9])
    np.testing.assert_allclose(table["accuracy"].iloc[2:], [1.0, 0.5, 1.0])
    assert table["confidence"].iloc[:2].isna().all()
    # 1/4 * |1 - 0.55| + 2/4 * |0.5 - 0.675| + 1/4 * |1 - 0.9|
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(0.1125 + 0.0875 + 0.025)
    # one bin: |accuracy - mean confidence| over all items
    assert expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(abs(0.75 - 0.7))
    # a confidence on a bin edge belongs to the bin below it: (0.4, 0.6] holds 0.6
    edge = reliability_table(np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([0, 0]), n_bins=2)
    assert edge["count"].tolist() == [1, 1]


def _toy(scale: float, n: int = 4000, classes: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0.0, 1.5, size=(n, classes))
    labels = np.array([rng.choice(classes, p=p) for p in softmax(true_logits, axis=1)])
    return scale * true_logits, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_temperature_scaling_recovers_the_miscalibration_and_lowers_nll(scale):
    logits, labels = _toy(scale)
    report = calibrate(logits, labels)
    assert report.temperature == pytest.approx(scale, rel=0.1)
    assert report.nll_after < report.nll_before
    assert report.ece_after < report.ece_before and report.ece_after < 0.03
    # probabilities in, the same temperature out (their logs differ from the logits by a constant per item)
    probs = softmax(logits, axis=1)
    assert fit_temperature(probs, labels, probabilities=True) == pytest.approx(report.temperature, rel=1e-3)
    # the argmax never moves
    np.testing.assert_array_equal(apply_temperature(logits, report.temperature).argmax(1), logits.argmax(1))


def test_calibrated_model_keeps_temperature_near_one():
    logits, labels = _toy(1.0, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.08)
    assert negative_log_likelihood(softmax(logits, axis=1), labels) > 0


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="shape"):
        fit_temperature(np.zeros(3), np.zeros(3, dtype=int))
    with pytest.raises(ConfigError, match="class indices"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ConfigError, match="sum to 1"):
        reliability_table(np.array([[0.9, 0.9]]), np.array([0]))
    with pytest.raises(ConfigError, match="temperature"):
        apply_temperature(np.zeros((2, 3)), 0.0)
