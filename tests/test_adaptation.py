"""Adaptation to a person (serkit.features.adaptation) and the trend-fidelity measures (serkit.evaluation.trend),
on synthetic features whose truth is known: classes are Gaussian clusters, a person is the training population
shifted by an offset, and their material may be lopsided."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from serkit.errors import ConfigError
from serkit.evaluation.trend import build_sessions, estimate_shares, fidelity, negative_of, session_truth
from serkit.features.adaptation import AdaptationConfig, adapt_normalizer
from serkit.features.normalization import FeatureNormalizer

CLASSES = ["angry", "happy", "neutral", "sad"]
D = 16


def clusters(rng, per_class: int, offset: np.ndarray | None = None, counts: dict[str, int] | None = None):
    centres = np.stack([np.eye(D)[j] * 4.0 for j in range(len(CLASSES))])
    X, y = [], []
    for j, c in enumerate(CLASSES):
        n = per_class if counts is None else counts.get(c, 0)
        X.append(centres[j] + rng.normal(size=(n, D)) + (0 if offset is None else offset))
        y += [c] * n
    return np.concatenate(X).astype(np.float32), np.array(y)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X, y = clusters(rng, 200)
    norm = FeatureNormalizer("global").fit(X).fit_class_means(X, y)
    head = LogisticRegression(max_iter=2000).fit(norm.transform(X), y)
    assert list(head.classes_) == CLASSES
    return norm, head


def ua(head, norm, X, y) -> float:
    pred = head.predict(norm.transform(X))
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def test_class_means_are_stored_and_survive_the_state_dict(trained):
    norm, _ = trained
    assert sorted(norm.class_mean) == CLASSES and norm.class_mean["sad"].shape == norm.mean.shape
    back = FeatureNormalizer().load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(back.class_mean["neutral"], norm.class_mean["neutral"])
    old = norm.state_dict()
    del old["class_mean"]  # a model file written before class means existed still loads
    assert FeatureNormalizer().load_state_dict(old).class_mean == {}


def test_centre_and_shrink_move_the_mean_by_the_amount_of_material(trained):
    norm, _ = trained
    rng = np.random.default_rng(1)
    X, _ = clusters(rng, 10, offset=np.full(D, 2.0))
    own = X.mean(0)
    full, fit = adapt_normalizer(norm, X, AdaptationConfig(method="centre"))
    np.testing.assert_allclose(full.mean, own, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(full.std, norm.std)
    assert fit.pieces == 40 and fit.weight == 1.0 and fit.shift_sd > 1.0
    half, fit = adapt_normalizer(norm, X, AdaptationConfig(method="centre", shrink=40))
    assert fit.weight == 0.5
    np.testing.assert_allclose(half.mean, (norm.mean + own) / 2, rtol=1e-5, atol=1e-5)
    std, _ = adapt_normalizer(norm, X, AdaptationConfig(method="standardise"))
    np.testing.assert_allclose(std.std, X.astype(np.float64).std(0), rtol=1e-4)


def test_neutral_enrolment_puts_the_persons_calm_voice_where_the_training_calm_voice_was(trained):
    norm, head = trained
    rng = np.random.default_rng(2)
    offset = rng.normal(size=D) * 2.5
    calm, _ = clusters(rng, 0, offset=offset, counts={"neutral": 6})
    test_X, test_y = clusters(rng, 50, offset=offset)
    adapted, _ = adapt_normalizer(norm, calm, AdaptationConfig(method="neutral"))
    # the estimated offset is the true one, up to the noise of 6 clips' mean
    assert np.abs((adapted.mean - norm.mean) - offset).mean() < 0.6
    assert ua(head, adapted, test_X, test_y) > ua(head, norm, test_X, test_y) + 0.2
    # standardising on the same calm clips pulls neutral to the middle: far worse than the neutral method
    plain, _ = adapt_normalizer(norm, calm, AdaptationConfig(method="standardise"))
    assert ua(head, plain, test_X, test_y) < ua(head, adapted, test_X, test_y) - 0.2


def test_balanced_survives_lopsided_material_where_centring_does_not(trained):
    norm, head = trained
    rng = np.random.default_rng(3)
    offset = np.full(D, 1.5)
    sad_mostly, _ = clusters(rng, 0, offset=offset, counts={"sad": 45, "neutral": 5})
    test_X, test_y = clusters(rng, 50, offset=offset)

    def proba(Z):
        return head.predict_proba(Z)

    centre, _ = adapt_normalizer(norm, sad_mostly, AdaptationConfig(method="centre"))
    balanced, fit = adapt_normalizer(norm, sad_mostly, AdaptationConfig(method="balanced", prior=0.0),
                                     proba=proba, labels=CLASSES)
    err = {name: np.abs((n.mean - norm.mean) - offset).mean() for name, n in (("centre", centre), ("balanced", balanced))}
    assert err["balanced"] < err["centre"] / 2
    assert fit.mixture["sad"] > 0.6  # it heard the material as mostly sad
    assert ua(head, balanced, test_X, test_y) > ua(head, centre, test_X, test_y)
    # on even material the balanced estimate is the centred one, near enough
    even, _ = clusters(rng, 20, offset=offset)
    a, _ = adapt_normalizer(norm, even, AdaptationConfig(method="centre"))
    b, _ = adapt_normalizer(norm, even, AdaptationConfig(method="balanced"), proba=proba, labels=CLASSES)
    assert np.abs(a.mean - b.mean).mean() < 0.3


def test_adaptation_errors_name_what_is_missing(trained):
    norm, _ = trained
    X = np.zeros((5, D), np.float32)
    bare = FeatureNormalizer("global").fit(np.random.default_rng(0).normal(size=(20, D)))
    with pytest.raises(ConfigError, match="no training mean for class"):
        adapt_normalizer(bare, X, AdaptationConfig(method="neutral"))
    with pytest.raises(ConfigError, match="needs the model's probabilities"):
        adapt_normalizer(norm, X, AdaptationConfig(method="balanced"))
    with pytest.raises(ConfigError, match="does not standardise"):
        adapt_normalizer(FeatureNormalizer("none"), X, AdaptationConfig(method="centre"))
    with pytest.raises(ConfigError, match="do not match"):
        adapt_normalizer(norm, np.zeros((5, D + 1), np.float32), AdaptationConfig(method="centre"))
    with pytest.raises(ValueError):
        AdaptationConfig(method="median")


def test_sessions_have_the_asked_negative_shares_and_known_emotion_shares():
    labels = ["sad"] * 8 + ["angry"] * 8 + ["neutral"] * 10 + ["happy"] * 10
    rng = np.random.default_rng(0)
    sessions = build_sessions(labels, shares=[0.0, 0.5, 1.0], per_share=3, size=20, rng=rng)
    assert len(sessions) == 9 and all(len(s.clips) == 20 for s in sessions)
    truth = session_truth(labels, sessions, ["angry", "happy", "neutral", "sad"])
    neg = negative_of(truth, ["angry", "happy", "neutral", "sad"])
    np.testing.assert_allclose(neg, [s.negative_share for s in sessions])
    np.testing.assert_allclose(neg, [0, 0, 0, 0.5, 0.5, 0.5, 1, 1, 1])
    # 10 negative clips from 16: drawn without replacement; 20 from 16: with
    half = sessions[3].clips[:10]
    assert len(set(half.tolist())) == 10
    assert build_sessions(["happy"] * 30, shares=[0.5], per_share=1, size=20, rng=rng) == []


def test_estimators_and_fidelity_measures():
    labels = ["sad"] * 20 + ["happy"] * 20
    classes = ["happy", "sad"]
    sessions = build_sessions(labels, shares=[0, 0.25, 0.5, 0.75, 1], per_share=2, size=20,
                              rng=np.random.default_rng(1))
    truth = negative_of(session_truth(labels, sessions, classes), classes)
    perfect = np.array([[0.0, 1.0]] * 20 + [[1.0, 0.0]] * 20)
    for estimator in ("mean", "argmax"):
        f = fidelity(truth, negative_of(estimate_shares(perfect, sessions, estimator), classes))
        assert f == {"rho": pytest.approx(1.0), "mae": pytest.approx(0.0)}
    # a model that hears everything as 60 % sad: argmax says all sad, the mean says 0.6 everywhere
    biased = np.tile([0.4, 0.6], (40, 1))
    assert np.allclose(negative_of(estimate_shares(biased, sessions, "argmax"), classes), 1.0)
    f = fidelity(truth, negative_of(estimate_shares(biased, sessions, "mean"), classes))
    assert f["rho"] is None and f["mae"] == pytest.approx(np.mean(np.abs(truth - 0.6)))
    with pytest.raises(ValueError, match="estimator"):
        estimate_shares(perfect, sessions, "median")
