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


# -- nuisance_dims: the directions along which the training corpora's means differ are projected out -------------
def _confounded_corpora(seed: int = 0, n: int = 300, d: int = 20):
    """Two training corpora and a new one: the class cue is on feature 0; each corpus is moved along one shared
    "recording set-up" direction, and the training corpora's class mixes differ (corpus A mostly class 1,
    corpus B mostly class 0), so that direction predicts the class in training only. The new corpus sits far
    along it, with balanced classes."""
    rng = np.random.default_rng(seed)
    setup = np.zeros(d)
    setup[1:4] = 1 / np.sqrt(3)

    def corpus(n_items: int, p_one: float, offset: float):
        labels = (rng.random(n_items) < p_one).astype(int)
        x = rng.normal(size=(n_items, d))
        x[:, 0] += 1.2 * (2 * labels - 1)
        return x + offset * setup, labels

    (xa, ya), (xb, yb), (xn, yn) = corpus(n, 0.85, 3.0), corpus(n, 0.15, -3.0), corpus(n, 0.5, -6.0)
    X = np.concatenate([xa, xb])
    return X, np.concatenate([ya, yb]), np.repeat(["A", "B"], n), xn, yn, setup


def test_nuisance_dims_removes_the_corpus_direction_and_helps_a_new_corpus():
    from sklearn.metrics import balanced_accuracy_score

    X, y, g, x_new, y_new, setup = _confounded_corpora()
    plain = create_model("logreg", num_classes=2, C=[1.0]).fit(X, y)
    nap = create_model("logreg", num_classes=2, C=[1.0], nuisance_dims=1).fit(X, y, groups=g)
    directions = nap.nuisance_directions
    assert directions.shape == (1, X.shape[1]) and nap.fit_info()["nuisance_dims"] == 1
    np.testing.assert_allclose(np.linalg.norm(directions), 1.0)
    # the direction found is the difference of the corpora's class-balanced means (the mean of their class means):
    # the set-up direction, not the class cue that the corpora's different class mixes put into their plain means
    def balanced(corpus):
        return np.mean([X[(g == corpus) & (y == c)].mean(0) for c in (0, 1)], axis=0)

    diff = balanced("A") - balanced("B")
    assert abs(directions[0] @ diff) == pytest.approx(np.linalg.norm(diff))
    assert abs(directions[0] @ setup) > 0.98 and abs(directions[0, 0]) < 0.1
    # after projection the two corpora share one balanced mean; predictions are the plain fit's on projected data
    projected = X - (X @ directions.T) @ directions
    np.testing.assert_allclose(balanced("A") @ (np.eye(len(setup)) - directions.T @ directions),
                               balanced("B") @ (np.eye(len(setup)) - directions.T @ directions), atol=1e-10)
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(projected, y)
    np.testing.assert_allclose(nap.predict_proba(x_new),
                               reference.predict_proba(x_new - (x_new @ directions.T) @ directions), atol=1e-8)
    # on the new corpus the plain model follows the set-up direction; the projected one follows the class cue
    ua_plain = balanced_accuracy_score(y_new, plain.predict(x_new))
    ua_nap = balanced_accuracy_score(y_new, nap.predict(x_new))
    assert ua_nap > 0.85 and ua_nap > ua_plain + 0.1


def test_nuisance_dims_inside_leave_one_corpus_out_uses_each_inner_fit_s_own_corpora():
    X, y, g, x_new, y_new, _ = _confounded_corpora()
    # three corpora: each inner fit has two, so one direction of its own; the final fit has three (at most two)
    X3 = np.concatenate([X, x_new])
    y3, g3 = np.concatenate([y, y_new]), np.concatenate([g, np.full(len(y_new), "N")])
    model = create_model("logreg", num_classes=2, C=[0.01, 1.0], select_on="groups", nuisance_dims=5)
    model.fit(X3, y3, groups=g3)
    assert model.nuisance_directions.shape == (2, X.shape[1])  # clipped to groups - 1
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    from serkit.models.classical import group_mean_directions

    for entry in model.selection:  # the inner scores are those of hand-made projections on the inner corpora
        expected = []
        for held in np.unique(g3):
            inner = g3 != held
            P = group_mean_directions(X3[inner], g3[inner], 5, y3[inner])
            assert P.shape == (1, X.shape[1])
            fit = LogisticRegression(C=entry["C"], class_weight="balanced", max_iter=2000).fit(
                X3[inner] - (X3[inner] @ P.T) @ P, y3[inner])
            expected.append(balanced_accuracy_score(y3[~inner], fit.predict(X3[~inner] - (X3[~inner] @ P.T) @ P)))
        assert entry["val_ua"] == pytest.approx(np.mean(expected))


def test_nuisance_dims_needs_groups_and_the_learner_passes_them():
    X, y, g, *_ = _confounded_corpora()
    with pytest.raises(ConfigError, match="nuisance_dims needs a group for each"):
        create_model("logreg", num_classes=2, C=[1.0], nuisance_dims=1).fit(X, y)
    # one group (a cross-fitted calibration copy may train on one corpus): no direction to remove, none removed
    single = create_model("logreg", num_classes=2, C=[1.0], nuisance_dims=1).fit(X, y, groups=np.full(len(y), "A"))
    assert single.nuisance_directions.shape == (0, X.shape[1]) and single.fit_info()["nuisance_dims"] == 0
    np.testing.assert_allclose(single.predict_proba(X),
                               create_model("logreg", num_classes=2, C=[1.0]).fit(X, y).predict_proba(X))
    with pytest.raises(ValueError, match="nuisance_dims"):
        create_model("logreg", num_classes=2, nuisance_dims=-1)
    learner = create_learner("logreg", num_classes=2, input_shape=(X.shape[1],),
                             options={"C": [1.0], "nuisance_dims": 1})
    assert learner.fit(X, y, groups=g)["nuisance_dims"] == 1


def test_a_model_pickled_before_nuisance_dims_existed_predicts_as_before():
    import pickle

    X, y, _g, x_new, _, _ = _confounded_corpora()
    model = create_model("logreg", num_classes=2, C=[1.0]).fit(X, y)
    before = model.predict_proba(x_new)
    del model.nuisance_dims, model.nuisance_directions  # as unpickled from an older file: no such attributes
    model = pickle.loads(pickle.dumps(model))
    assert model.nuisance_dims == 0 and model.nuisance_directions is None and not model.uses_groups
    np.testing.assert_array_equal(model.predict_proba(x_new), before)
