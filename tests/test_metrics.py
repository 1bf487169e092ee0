"""Metrics (parity with scikit-learn), summaries and reports, feature normalisation, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from serkit.errors import ConfigError
from serkit.features.normalization import FeatureNormalizer
from serkit.training.metrics import (
    compute_metrics,
    results_markdown,
    scalar_metrics,
    summarize,
    write_csv,
)
from serkit.training.plots import plot_confusion, plot_training_curves

LABELS = ["angry", "happy", "neutral", "sad"]

# ------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(LABELS, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.choice(LABELS, 200))
    m = compute_metrics(y_true, y_pred, LABELS)
    assert m["wa"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=LABELS)
    np.testing.assert_allclose(m["per_class"][["precision", "recall", "f1"]].to_numpy(), np.c_[p, r, f])
    np.testing.assert_array_equal(m["per_class"]["support"].to_numpy(), s)
    assert list(m["per_class"].index) == LABELS
    cm = confusion_matrix(y_true, y_pred, labels=LABELS)
    np.testing.assert_array_equal(m["confusion"], cm)
    np.testing.assert_allclose(m["confusion_normalized"], cm / cm.sum(axis=1, keepdims=True))
    assert m["n"] == 200


def test_metrics_accept_class_indices():
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    by_index = compute_metrics(t, p, LABELS)
    by_name = compute_metrics(np.array(LABELS)[t], np.array(LABELS)[p], LABELS)
    assert by_index["ua"] == by_name["ua"] and by_index["macro_f1"] == by_name["macro_f1"]


def test_metrics_class_missing_from_the_test_set():
    # One speaker never shows "sad"; the model still predicts it once.
    y_true = ["angry", "angry", "happy", "happy", "neutral", "neutral"]
    y_pred = ["angry", "sad", "happy", "neutral", "neutral", "neutral"]
    m = compute_metrics(y_true, y_pred, LABELS)
    present = ["angry", "happy", "neutral"]
    assert m["present_labels"] == present
    # UA over the classes present in y_true: (1/2 + 1/2 + 1) / 3, as balanced_accuracy_score.
    assert m["ua"] == pytest.approx(2 / 3)
    with pytest.warns(UserWarning):  # sklearn warns about the predicted-but-absent class, and agrees
        assert m["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro"))
    sad = m["per_class"].loc["sad"]
    assert sad["support"] == 0 and np.isnan(sad["recall"]) and sad["precision"] == 0
    assert m["confusion"].shape == (4, 4) and m["confusion"][3].sum() == 0
    np.testing.assert_array_equal(m["confusion_normalized"][3], np.zeros(4))
    np.testing.assert_allclose(m["confusion_normalized"][:3].sum(axis=1), 1.0)


def test_metrics_errors():
    with pytest.raises(ConfigError, match="surprised"):
        compute_metrics(["angry"], ["surprised"], LABELS)
    with pytest.raises(ConfigError, match="length"):
        compute_metrics(["angry", "sad"], ["angry"], LABELS)
    with pytest.raises(ConfigError, match="empty"):
        compute_metrics([], [], LABELS)
    with pytest.raises(ConfigError, match="out of range"):
        compute_metrics(np.array([0, 4]), np.array([0, 1]), LABELS)


def _fold_rows() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(4):
        y = rng.choice(LABELS, 40)
        p = np.where(rng.random(40) < 0.5 + 0.1 * fold, y, rng.choice(LABELS, 40))
        rows.append(scalar_metrics(compute_metrics(y, p, LABELS), fold=f"fold{fold + 1:02d}", seed=0))
    return rows


def test_summarize_mean_and_sample_std():
    rows = _fold_rows()
    summary = summarize(rows)
    ua = np.array([r["ua"] for r in rows])
    assert summary.loc["ua", "mean"] == pytest.approx(ua.mean())
    assert summary.loc["ua", "std"] == pytest.approx(ua.std(ddof=1))
    assert list(summary.index) == ["wa", "ua", "macro_f1", "weighted_f1"]
    assert (summary["n_runs"] == 4).all()
    single = summarize(rows[:1])
    assert np.isnan(single.loc["wa", "std"])
    with pytest.raises(ConfigError):
        summarize([{"fold": "x"}])


def test_results_markdown_shows_tag_folds_and_mean_std(tmp_path):
    rows = _fold_rows()
    per_fold = pd.DataFrame(rows)
    summary = summarize(rows)
    text = results_markdown(per_fold, summary, title="EmoDB LOSO", protocol_tag="SI", corpus="emodb",
                            notes=["per-speaker normalisation used each test speaker's own audio"])
    assert text.startswith("# EmoDB LOSO")
    assert "SI (speaker-independent" in text and "own audio" in text
    for r in rows:
        assert f"| {r['fold']} | 0 | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} |" in text
    mean, std = 100 * summary.loc["ua", "mean"], 100 * summary.loc["ua", "std"]
    assert f"**{mean:.2f}** ± {std:.2f}" in text
    sd = results_markdown(per_fold, summary, title="t", protocol_tag="SD", corpus="emodb", notes="")
    assert "speaker-dependent" in sd
    with pytest.raises(ConfigError, match="protocol_tag"):
        results_markdown(per_fold, summary, title="t", protocol_tag="loso", corpus="emodb", notes="")

    path = write_csv(per_fold, tmp_path / "out" / "per_fold.csv")
    np.testing.assert_allclose(pd.read_csv(path)["ua"], per_fold["ua"])
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temporary file left behind
    write_csv(per_fold.head(1), path)  # overwrite in place
    assert len(pd.read_csv(path)) == 1


# ------------------------------------------------------------------------------- normalisation


def test_global_normalizer_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, size=(30, 3, 8, 20)).astype(np.float32)
    test = rng.normal(-3.0, 0.5, size=(6, 3, 8, 20)).astype(np.float32)
    norm = FeatureNormalizer("global").fit(train)
    mean = train.astype(np.float64).mean(axis=(0, 3), keepdims=True)[0]
    std = train.astype(np.float64).std(axis=(0, 3), keepdims=True)[0]
    assert norm.mean.shape == (3, 8, 1)
    out = norm.transform(test)
    np.testing.assert_allclose(out, (test - mean) / std, rtol=1e-4, atol=1e-4)
    # The test data are not standardised by their own statistics: far from zero mean.
    assert out.mean() < -3.0
    z = norm.transform(train)
    np.testing.assert_allclose(z.mean(axis=(0, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 3)), 1.0, atol=1e-4)


def test_normalizer_shapes_axis_zero_std_and_torch():
    rng = np.random.default_rng(1)
    x2 = rng.normal(size=(50, 6))
    x2[:, 2] = 7.0  # constant feature: std guarded, becomes 0
    norm = FeatureNormalizer().fit(x2)
    out = norm.transform(x2)
    assert np.isfinite(out).all() and np.allclose(out[:, 2], 0.0)
    x3 = rng.normal(size=(10, 40, 30)).astype(np.float32)
    norm3 = FeatureNormalizer().fit(x3)
    assert norm3.mean.shape == (40, 1)
    scalar = FeatureNormalizer(axis=(0, 1, 2)).fit(x3)
    assert scalar.mean.shape == (1, 1)
    with pytest.raises(ConfigError, match="axis"):
        FeatureNormalizer(axis=(1, 2)).fit(x3)
    with pytest.raises(ConfigError, match="do not match"):
        norm3.transform(rng.normal(size=(2, 20, 30)))
    with pytest.raises(ConfigError, match="not fitted"):
        FeatureNormalizer().transform(x3)
    tensor_out = norm3.transform(torch.from_numpy(x3))
    assert isinstance(tensor_out, torch.Tensor) and tensor_out.dtype == torch.float32
    np.testing.assert_allclose(tensor_out.numpy(), norm3.transform(x3))
    none = FeatureNormalizer("none").fit(x3)
    np.testing.assert_array_equal(none.transform(x3), x3)


def test_per_speaker_normalizer():
    rng = np.random.default_rng(2)
    offsets = {"a": 10.0, "b": -4.0, "c": 1.0}
    speakers = np.repeat(["a", "b", "c"], 8)
    x = np.stack([rng.normal(offsets[s], 1.0, size=(5, 12)) for s in speakers]).astype(np.float32)
    train = speakers != "c"
    norm = FeatureNormalizer("per_speaker").fit(x[train], speakers[train])
    out = norm.transform(x[train], speakers[train])
    for s in ("a", "b"):
        rows = speakers[train] == s
        np.testing.assert_allclose(out[rows].mean(axis=(0, 2)), 0.0, atol=1e-4)
    with pytest.raises(ConfigError, match=r"\['c'\].*own_audio"):
        norm.transform(x[~train], speakers[~train])
    with pytest.raises(ConfigError, match="speaker"):
        norm.transform(x[train])
    assert not norm.uses_test_audio

    # unseen="global": the unseen speaker gets the training set's global statistics.
    fallback = FeatureNormalizer("per_speaker", unseen="global").fit(x[train], speakers[train])
    glob = FeatureNormalizer("global").fit(x[train])
    np.testing.assert_allclose(fallback.transform(x[~train], speakers[~train]), glob.transform(x[~train]), atol=1e-5)

    # unseen="own_audio": the test speaker's own unlabelled audio, flagged for reporting.
    adapt = FeatureNormalizer("per_speaker", unseen="own_audio").fit(x[train], speakers[train])
    assert adapt.uses_test_audio
    own = adapt.transform(x[~train], speakers[~train])
    np.testing.assert_allclose(own.mean(axis=(0, 2)), 0.0, atol=1e-4)
    # Seen speakers still use their training statistics, whatever else is in the batch.
    mixed = adapt.transform(x, speakers)
    np.testing.assert_allclose(mixed[train], out, atol=1e-5)


def test_normalizer_state_dict_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 2, 6, 9)).astype(np.float32)
    speakers = np.repeat(["s1", "s2", "s3"], 4)
    norm = FeatureNormalizer("per_speaker", unseen="global").fit(x, speakers)
    path = tmp_path / "norm.pt"
    torch.save(norm.state_dict(), path)
    state = torch.load(path, weights_only=True)
    restored = FeatureNormalizer().load_state_dict(state)
    assert restored.scope == "per_speaker" and restored.unseen == "global"
    np.testing.assert_array_equal(restored.transform(x, speakers), norm.transform(x, speakers))
    with pytest.raises(ConfigError, match="missing field"):
        FeatureNormalizer().load_state_dict({"scope": "global"})


# --------------------------------------------------------------------------------------- plots


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # something was drawn


def test_plot_confusion_writes_png(tmp_path):
    m = compute_metrics(["angry", "happy", "sad", "sad"], ["angry", "sad", "sad", "happy"], LABELS)
    path = plot_confusion(m["confusion"], LABELS, tmp_path / "plots" / "cm.png", title="fold 1")
    _assert_png(path)
    _assert_png(plot_confusion(m["confusion"], LABELS, tmp_path / "cm_counts.png", normalize=False))
    with pytest.raises(ConfigError, match="labels"):
        plot_confusion(np.zeros((3, 3)), LABELS, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_training_curves_writes_png(tmp_path):
    epochs = np.arange(1, 21)
    log = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.2 / epochs + 0.1,
                        "val_ua": 1 - 1 / epochs, "val_wa": 1 - 0.8 / epochs, "lr": 1e-3})
    _assert_png(plot_training_curves(log, tmp_path / "curves.png"))
    _assert_png(plot_training_curves(log[["epoch", "train_loss"]], tmp_path / "loss_only.png"))
    with pytest.raises(ConfigError, match="epoch"):
        plot_training_curves(log.drop(columns=["epoch"]), tmp_path / "x.png")
