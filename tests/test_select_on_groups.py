"""Choosing a classifier's hyperparameter by leaving groups (corpora) out: the choice follows the held-out groups,
not the validation split, and a recipe's runner passes each training item's corpus."""

import numpy as np
import pytest

from serkit.errors import ConfigError
from serkit.models import create_model
from serkit.models.learner import create_learner


def _corpora(seed: int = 0, n: int = 120, d: int = 30):
    """Three corpora of two classes: a weak class cue shared by all, a strong one of each corpus's own (a random
    direction per corpus), and an offset per corpus."""
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    for c in range(3):
        own = rng.normal(size=d)
        labels = rng.integers(0, 2, n)
        x = rng.normal(size=(n, d)) + rng.normal(scale=2.0, size=d)
        x[:, 0] += 0.8 * (2 * labels - 1)
        x += 0.4 * (2 * labels - 1)[:, None] * own
        X.append(x); y.append(labels); g.append(np.full(n, f"corpus{c}"))
    return np.concatenate(X), np.concatenate(y), np.concatenate(g)


def test_groups_choose_and_the_validation_split_does_not():
    X, y, g = _corpora()
    grid = [1e-4, 1e-2, 1.0]
    model = create_model("logreg", num_classes=2, C=grid, select_on="groups", refit=False)
    model.fit(X[:300], y[:300], X[300:], y[300:], groups=g[:300])
    info = model.fit_info()
    assert info["selected_on"] == "groups" and info["refit_on_val"] is False
    scores = {s["C"]: s["val_ua"] for s in model.selection}
    assert set(scores) == set(grid)
    assert set(model.selection[0]["per_group"]) == {"corpus0", "corpus1", "corpus2"}
    assert info["chosen_C"] == max(scores, key=scores.get)
    # validation labels scrambled: the same choice and the same model (they are not what chooses)
    scrambled = create_model("logreg", num_classes=2, C=grid, select_on="groups", refit=False)
    scrambled.fit(X[:300], y[:300], X[300:], 1 - y[300:], groups=g[:300])
    assert scrambled.fit_info()["chosen_C"] == info["chosen_C"]
    np.testing.assert_allclose(scrambled.predict_proba(X[300:]), model.predict_proba(X[300:]))
    # the validation items are predicted by the model that never saw them (for calibration)
    np.testing.assert_allclose(model.validation_proba, model.predict_proba(X[300:]))
    # refit: the final model then also learns the validation items
    refitted = create_model("logreg", num_classes=2, C=grid, select_on="groups").fit(
        X[:300], y[:300], X[300:], y[300:], groups=g[:300])
    assert refitted.fit_info()["refit_on_val"] is True
    assert not np.allclose(refitted.predict_proba(X[300:]), model.predict_proba(X[300:]))


def test_leaving_groups_out_matches_a_hand_loop():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    X, y, g = _corpora(seed=1)
    model = create_model("logreg", num_classes=2, C=[0.01, 0.1], select_on="groups").fit(X, y, groups=g)
    for entry in model.selection:
        expected = np.mean([
            balanced_accuracy_score(y[g == held], LogisticRegression(C=entry["C"], class_weight="balanced",
                                                                      max_iter=2000).fit(X[g != held], y[g != held])
                                    .predict(X[g == held]))
            for held in np.unique(g)])
        assert entry["val_ua"] == pytest.approx(expected)


def test_groups_are_required_and_must_be_several():
    X, y, _ = _corpora()
    model = create_model("logreg", num_classes=2, C=[0.01, 0.1], select_on="groups")
    with pytest.raises(ConfigError, match="a group for each"):
        model.fit(X, y)
    with pytest.raises(ConfigError, match="at least 2 groups"):
        model.fit(X, y, groups=np.full(len(X), "emodb"))
    with pytest.raises(ValueError, match="select_on"):
        create_model("logreg", num_classes=2, select_on="speakers")


def test_learner_passes_groups_only_to_a_model_that_selects_on_them():
    X, y, g = _corpora()
    learner = create_learner("logreg", num_classes=2, input_shape=(X.shape[1],),
                             options={"C": [1e-4, 1.0], "select_on": "groups"})
    info = learner.fit(X, y, groups=g)
    assert info["selected_on"] == "groups" and info["chosen_C"] in (1e-4, 1.0)
    plain = create_learner("logreg", num_classes=2, input_shape=(X.shape[1],), options={"C": [0.01, 0.1]})
    info = plain.fit(X[:200], y[:200], X[200:], y[200:], groups=g[:200])  # groups ignored: chosen on validation
    assert "selected_on" not in info


def test_a_model_pickled_before_select_on_existed_chooses_on_validation():
    import pickle

    X, y, _ = _corpora()
    model = create_model("logreg", num_classes=2, C=[0.01, 0.1])
    del model.select_on  # as unpickled from a file written before the option: no such attribute
    model = pickle.loads(pickle.dumps(model))
    assert "select_on" not in vars(model) and model.select_on == "validation"
    model.fit(X[:200], y[:200], X[200:], y[200:])
    info = model.fit_info()
    assert "selected_on" not in info and [s["C"] for s in model.selection] == [0.01, 0.1]
