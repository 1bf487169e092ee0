"""Model registry and the mountzouris2023 CNN / CNN-ATN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fit_tiny_batch
from serkit.errors import ConfigError
from serkit.models import create_model, list_models, model_spec


def test_registry_lists_and_rejects_unknown():
    assert {"mountzouris2023_cnn", "mountzouris2023_cnn_atn", "mountzouris2023_sdnn", "mountzouris2023_lstm",
            "mountzouris2023_lstm_atn", "svm"} <= set(list_models())
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        model_spec("nope")
    with pytest.raises(ConfigError, match="kernel_size_typo"):
        create_model("mountzouris2023_cnn_atn", num_classes=8, input_shape=(40, 228), kernel_size_typo=3)


@pytest.mark.parametrize("name", ["mountzouris2023_cnn", "mountzouris2023_cnn_atn"])
def test_paper_shapes(name):
    # The paper's RAVDESS input (228 frames x 40 MFCCs) shrinks to 204 frames x 16 channels (section 3.5).
    model = create_model(name, num_classes=8, input_shape=(40, 228))
    assert model.output_frames == 204
    out = model(torch.randn(3, 40, 228))
    assert out.shape == (3, 8)
    if name == "mountzouris2023_cnn":
        assert model.head.in_features == 3264  # the paper's flatten size
    else:
        assert model.head.in_features == 128


def test_dropout_placement_follows_paper():
    cnn = create_model("mountzouris2023_cnn", num_classes=8, input_shape=(40, 228))
    atn = create_model("mountzouris2023_cnn_atn", num_classes=8, input_shape=(40, 228))
    count = lambda m: sum(isinstance(x, torch.nn.Dropout) for x in m.modules())
    assert count(cnn) == 4 and count(atn) == 3
    assert count(create_model("mountzouris2023_cnn_atn", num_classes=8, input_shape=(40, 228), dropout=0)) == 0


def test_same_padding_and_leaky_relu_options():
    model = create_model("mountzouris2023_cnn_atn", num_classes=7, input_shape=(40, 308), padding="same",
                         activation_name="leaky_relu")
    assert model.output_frames == 308
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.modules())
    assert model(torch.randn(2, 40, 308)).shape == (2, 7)


def test_attention_weights_sum_to_one():
    model = create_model("mountzouris2023_cnn_atn", num_classes=8, input_shape=(40, 100)).eval()
    model(torch.randn(4, 40, 100))
    w = model.attention.last_weights
    assert w.shape == (4, 100 - 24)
    torch.testing.assert_close(w.sum(1), torch.ones(4))


SEQUENCE_MODELS = ["mountzouris2023_cnn", "mountzouris2023_cnn_atn", "mountzouris2023_lstm", "mountzouris2023_lstm_atn"]
# (name, per-item input shape) for every torch model of the zoo
ALL_TORCH = [(n, (40, 60)) for n in SEQUENCE_MODELS] + [("mountzouris2023_sdnn", (40,))]


def test_sdnn_and_lstm_paper_shapes():
    sdnn = create_model("mountzouris2023_sdnn", num_classes=8, input_shape=(40,))
    assert sdnn.head.in_features == 2560  # 40 positions x 64 units (section 3.2)
    assert sdnn(torch.randn(3, 40)).shape == (3, 8)
    for name, head in (("mountzouris2023_lstm", 50), ("mountzouris2023_lstm_atn", 128)):
        model = create_model(name, num_classes=7, input_shape=(40, 308))
        assert model.head.in_features == head
        assert model(torch.randn(2, 40, 308)).shape == (2, 7)
    atn = create_model("mountzouris2023_lstm_atn", num_classes=8, input_shape=(40, 50)).eval()
    atn(torch.randn(3, 40, 50))
    torch.testing.assert_close(atn.attention.last_weights.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="pooling: mean"):
        create_model("mountzouris2023_sdnn", num_classes=8, input_shape=(40, 228))


def test_lstms_read_the_last_frame_before_the_padding():
    from serkit.models.layers import padded_lengths

    torch.manual_seed(0)
    clip = torch.randn(1, 40, 30)
    silence = torch.full((40, 1), -0.7)  # the features of zero padding: one frame, repeated
    padded = torch.cat([clip, silence.expand(40, 50)[None]], dim=2)  # 30 frames of speech, then 50 of padding
    full = torch.randn(1, 40, 80)
    assert padded_lengths(torch.cat([padded, full])).tolist() == [30, 80]
    for name in ("mountzouris2023_lstm", "mountzouris2023_lstm_atn"):
        model = create_model(name, num_classes=5, input_shape=(40, 80)).eval()
        short = create_model(name, num_classes=5, input_shape=(40, 30)).eval()
        short.load_state_dict(model.state_dict())
        with torch.no_grad():
            # the padded clip gets exactly what the clip alone gets: the padding is neither read nor attended to
            torch.testing.assert_close(model(padded), short(clip))
            old = create_model(name, num_classes=5, input_shape=(40, 80), read="last").eval()
            old.load_state_dict(model.state_dict())
            assert not torch.allclose(old(padded), short(clip))  # reading after the padding changes the answer
    with pytest.raises(ValueError, match="read"):
        create_model("mountzouris2023_lstm", num_classes=5, input_shape=(40, 30), read="first")


@pytest.mark.parametrize("name,shape", ALL_TORCH)
def test_gradients_reach_every_parameter(name, shape):
    model = create_model(name, num_classes=4, input_shape=shape)
    model(torch.randn(5, *shape)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


@pytest.mark.parametrize("name,shape", ALL_TORCH)
def test_overfits_a_tiny_batch(name, shape):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, input_shape=shape, dropout=0.0)
    x, y = torch.randn(8, *shape), torch.arange(8) % 4
    fit_tiny_batch(model, x, y, steps=100)
    model.eval()
    assert (model(x).argmax(1) == y).all()


@pytest.mark.parametrize("name,shape", ALL_TORCH)
def test_save_load_round_trip(tmp_path, name, shape):
    model = create_model(name, num_classes=8, input_shape=shape).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = create_model(name, num_classes=8, input_shape=shape).eval()
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    x = torch.randn(2, *shape)
    torch.testing.assert_close(model(x), other(x), rtol=0, atol=0)


def test_parameter_count_recorded():
    # Recorded so that changes are deliberate: convs 23104 + 28736 + 10272 + 5152 + 1552, batch norms 416,
    # attention W_c 32*128 = 4096, head 128*8 + 8 = 1032.
    model = create_model("mountzouris2023_cnn_atn", num_classes=8, input_shape=(40, 228))
    assert sum(p.numel() for p in model.parameters()) == 74_360


def test_svm_selects_C_on_validation_and_maps_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) + np.repeat(np.eye(3, 5) * 4, 20, axis=0)
    y = np.repeat(np.arange(3), 20)
    svm = create_model("svm", num_classes=4, C=[0.01, 1.0])
    svm.fit(X, y, X, y)
    assert [s["C"] for s in svm.selection] == [0.01, 1.0]
    proba = svm.predict_proba(X)
    assert proba.shape == (60, 4) and np.allclose(proba[:, 3], 0)  # class 3 unseen in training
    assert (svm.predict(X) == y).mean() > 0.9


def test_pca_lda_matches_scikit_learn_and_selects_components_on_validation():
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 40)) + np.repeat(np.eye(3, 40) * 3, 30, axis=0)
    y = np.repeat(np.arange(3), 30)
    # one setting, empirical priors: exactly scikit-learn's PCA (exact SVD) + LDA
    lda = create_model("pca_lda", num_classes=3, n_components=10, priors="empirical").fit(X, y)
    reference = make_pipeline(PCA(10, svd_solver="full"), LinearDiscriminantAnalysis()).fit(X, y)
    np.testing.assert_allclose(lda.predict_proba(X), reference.predict_proba(X), atol=1e-10)
    assert lda.fit_info() == {"chosen_n_components": 10, "refit_on_val": False}

    # a grid is scored on the validation split, the best kept, and the model refitted on train + validation
    X_val = rng.normal(size=(30, 40)) + np.repeat(np.eye(3, 40) * 3, 10, axis=0)
    y_val = np.repeat(np.arange(3), 10)
    lda = create_model("pca_lda", num_classes=4, n_components=[1, 20]).fit(X, y, X_val, y_val)
    assert [s["n_components"] for s in lda.selection] == [1, 20]
    best = max(lda.selection, key=lambda s: s["val_ua"])["n_components"]
    assert lda.fit_info()["chosen_n_components"] == best and lda.model.pipeline["pca"].n_samples_ == 120
    proba = lda.predict_proba(X)
    assert proba.shape == (90, 4) and np.allclose(proba[:, 3], 0) and np.allclose(proba.sum(1), 1)
    assert (lda.predict(X) == y).mean() > 0.9
    # equal class priors by default (UA is the target), whatever the class frequencies
    skewed = create_model("pca_lda", num_classes=3, n_components=5).fit(X[:70], y[:70])
    np.testing.assert_allclose(skewed.model.pipeline["lda"].priors_, [1 / 3] * 3)


def test_pca_lda_clips_components_and_refuses_bad_options():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 30)), np.arange(12) % 3
    lda = create_model("pca_lda", num_classes=3, n_components=500).fit(X, y)
    assert lda.model.pipeline["pca"].n_components_ == 11  # clips - 1
    assert lda.predict(X).shape == (12,)
    shrunk = create_model("pca_lda", num_classes=3, n_components=5, shrinkage=0.5).fit(X, y)
    assert shrunk.model.pipeline["lda"].solver == "lsqr"
    for bad in ({"n_components": 0}, {"priors": "flat"}, {"shrinkage": 2.0}, {"n_components": []}):
        with pytest.raises(ValueError):
            create_model("pca_lda", num_classes=3, **bad)
    with pytest.raises(RuntimeError, match="fit"):
        create_model("pca_lda", num_classes=3).predict(X)
