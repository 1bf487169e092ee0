"""The learner interface: torch and scikit-learn models fit, predict, save and load the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serkit.errors import ConfigError
from serkit.models.bundle import ModelBundle
from serkit.models.learner import EstimatorLearner, TorchLearner, create_learner
from serkit.training.trainer import Trainer, TrainingConfig


def separable(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.standard_normal((n, d)).astype(np.float32) + 3.0 * np.eye(classes, d)[y].astype(np.float32)
    return X, y


@pytest.mark.parametrize("name, options, cls", [
    ("logreg", {"C": [0.01, 1.0]}, EstimatorLearner),
    ("probe", {}, TorchLearner),
])
def test_both_kinds_fit_predict_and_survive_the_model_file(tmp_path, name, options, cls):
    X, y = separable()
    torch.manual_seed(0)
    trainer = lambda: Trainer(TrainingConfig(max_epochs=30, batch_size=32, device="cpu"), progress=False)
    learner = create_learner(name, num_classes=3, input_shape=(6,), options=options, trainer=trainer)
    assert isinstance(learner, cls)
    info = learner.fit(X[:90], y[:90], X[90:], y[90:], resume=False)
    assert info["train_seconds"] >= 0
    proba = learner.predict_proba(X[90:])
    assert proba.shape == (30, 3) and (proba.argmax(1) == y[90:]).mean() > 0.9
    assert (learner.module is None) == (cls is EstimatorLearner)

    recipe = {"name": "t", "model": {"name": name, **options}}
    path = ModelBundle(recipe, ["a", "b", "c"], (6,), learner, None, {}).save(tmp_path / "m.pt")
    loaded = ModelBundle.load(path)
    assert isinstance(loaded.learner, cls)
    np.testing.assert_allclose(loaded.learner.predict_proba(X[90:]), proba, rtol=1e-6, atol=1e-7)


def test_estimator_learner_reports_what_the_grid_chose():
    X, y = separable()
    learner = create_learner("logreg", num_classes=3, input_shape=(6,), options={"C": [1e-6, 1.0]})
    info = learner.fit(X[:90], y[:90], X[90:], y[90:])
    best = max(learner.model.selection, key=lambda s: s["val_ua"])
    assert len(learner.model.selection) == 2 and info["refit_on_val"] is True
    assert info["chosen_C"] == best["C"] and info["train_seconds"] >= 0


def test_a_torch_learner_without_trainer_predicts_but_cannot_fit():
    learner = create_learner("probe", num_classes=3, input_shape=(6,))
    assert learner.predict_proba(np.zeros((4, 6), np.float32)).shape == (4, 3)
    with pytest.raises(RuntimeError, match="no trainer"):
        learner.fit(np.zeros((4, 6), np.float32), np.zeros(4, int))


def test_unknown_model_kind_in_a_file_is_a_clear_error(tmp_path):
    X, y = separable()
    learner = create_learner("logreg", num_classes=3, input_shape=(6,), options={"C": 1.0})
    learner.fit(X, y)
    path = ModelBundle({"name": "t", "model": {"name": "logreg"}}, list("abc"), (6,), learner, None, {}).save(
        tmp_path / "m.pt")
    payload = torch.load(path, weights_only=False)
    payload["kind"] = "jax"
    torch.save(payload, path)
    with pytest.raises(ConfigError, match=r"m\.pt: unknown model kind 'jax'"):
        ModelBundle.load(path)
