"""mountzouris2023 DBN: RBM greedy pre-training, fine-tuning, and the runner's pre-training hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import fit_tiny_batch, write_tone_corpus
from serkit.models import create_model, model_spec
from serkit.models.bundle import ModelBundle
from serkit.recipe import Recipe
from serkit.training.experiment import run_experiment

NAME = "mountzouris2023_dbn"


def make(num_classes=8, n_features=40, **options):
    torch.manual_seed(0)
    return create_model(NAME, num_classes=num_classes, input_shape=(n_features,), **options)


def low_rank_data(n=256, n_features=40, rank=4, seed=0) -> np.ndarray:
    """Standardised features with structure an RBM can learn (a rank-4 signal plus a little noise)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, n_features))
    X += 0.1 * rng.standard_normal(X.shape)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32)


def test_paper_shapes_and_parameter_count():
    model = make()
    assert [(layer.in_features, layer.out_features) for layer in model.layers] == [(40, 128), (128, 128), (128, 128)]
    assert model(torch.randn(5, 40)).shape == (5, 8)
    # 40*128+128 + 2*(128*128+128) + 128*8+8; the RBMs' visible biases are buffers, not parameters
    assert sum(p.numel() for p in model.parameters()) == 39_304
    assert sum(b.numel() for b in model.buffers()) == 40 + 128 + 128
    assert "section 3.1" in model_spec(NAME).paper


def test_rejects_sequences_and_bad_options():
    with pytest.raises(ValueError, match="pooling: mean"):
        create_model(NAME, num_classes=8, input_shape=(40, 228))
    with pytest.raises(ValueError, match="activation_name"):
        make(activation_name="tanh")
    with pytest.raises(ValueError, match="rbm_lr > 0"):
        make(rbm_lr=0)


def test_gradients_reach_every_parameter():
    model = make().train()
    model(torch.randn(16, 40)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


@pytest.mark.parametrize("activation_name", ["relu", "sigmoid"])
def test_pretraining_lowers_reconstruction_error_and_is_seeded(activation_name):
    X = low_rank_data()
    short = make(activation_name=activation_name, rbm_epochs=1)
    first_epoch = short.pretrain(X, seed=0)["rbm1_recon_mse"]
    model = make(activation_name=activation_name, rbm_epochs=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    info = model.pretrain(X, seed=0)
    assert set(info) == {"rbm1_recon_mse", "rbm2_recon_mse", "rbm3_recon_mse", "pretrain_seconds"}
    assert info["rbm1_recon_mse"] < 0.7 * first_epoch
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    # every RBM weight, hidden bias and visible bias moved; the output layer is left to fine-tuning
    assert sorted(changed) == sorted([f"layers.{i}.{w}" for i in range(3) for w in ("weight", "bias")]
                                     + [f"visible_bias{i}" for i in range(3)])
    again = make(activation_name=activation_name, rbm_epochs=10)
    again.pretrain(X, seed=0)
    other = make(activation_name=activation_name, rbm_epochs=10)
    other.pretrain(X, seed=1)
    torch.testing.assert_close(again.layers[0].weight, model.layers[0].weight, rtol=0, atol=0)
    assert not torch.equal(other.layers[0].weight, model.layers[0].weight)


def test_pretrain_rejects_the_wrong_feature_size():
    with pytest.raises(ValueError, match=r"expected X of shape \(N, 40\)"):
        make().pretrain(np.zeros((10, 12), dtype=np.float32))


def test_overfits_a_tiny_batch_after_pretraining():
    X = low_rank_data(n=16)
    y = torch.arange(16) % 4
    model = make(num_classes=4, rbm_epochs=5)
    model.pretrain(X, seed=0)
    x = torch.as_tensor(X)
    fit_tiny_batch(model, x, y, steps=150, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).all()


def test_bundle_round_trip_keeps_the_rbm_state(tmp_path):
    model = make(rbm_epochs=2)
    model.pretrain(low_rank_data(), seed=0)
    model.eval()
    x = torch.randn(4, 40)
    with torch.no_grad():
        expected = model(x)
    ModelBundle({"model": {"name": NAME, "rbm_epochs": 2}}, list("abcdefgh"), (40,), model, None, {}
                ).save(tmp_path / "dbn.pt")
    loaded = ModelBundle.load(tmp_path / "dbn.pt").model
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(loaded.visible_bias0, model.visible_bias0, rtol=0, atol=0)


@pytest.fixture(scope="module")
def tone_corpus(tmp_path_factory) -> Path:
    """3 speakers x 2 emotions x 6 clips of 0.5 s at 8 kHz; the emotion sets the pitch."""
    root = tmp_path_factory.mktemp("dbn_tones")
    write_tone_corpus(root, clips_per_label=6, freqs={"angry": 300.0, "sad": 1200.0})
    return root


def test_runner_pretrains_on_each_fold_before_fine_tuning(tone_corpus, tmp_path):
    recipe = Recipe.from_dict({
        "name": "tiny_dbn",
        "corpus": {"name": "csv", "root": str(tone_corpus / "manifest.csv")},
        "audio": {"sample_rate": 8000, "duration": 0.5},
        "frontend": {"name": "mfcc", "n_mfcc": 20, "n_fft": 256, "hop_length": 128, "n_mels": 40},
        "pooling": "mean",
        "model": {"name": NAME, "hidden": [32, 32], "rbm_epochs": 3},
        "protocol": {"name": "loso", "n_val_speakers": 1},
        "training": {"optimizer": "sgd", "momentum": 0.0, "lr": 0.05, "batch_size": 8, "max_epochs": 30,
                     "early_stopping_patience": None},
    })
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert len(res.per_fold) == 3 and res.protocol_tag == "SI"
    assert res.per_fold["rbm1_recon_mse"].notna().all() and (res.per_fold["pretrain_seconds"] >= 0).all()
    assert res.overall["mean"]["ua"] > 0.8  # pitch separates the two classes
