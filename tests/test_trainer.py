"""Trainer: learning, early stopping, checkpoints, exact resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from serkit.errors import ConfigError
from serkit.models import create_model
from serkit.training.trainer import Trainer, TrainingConfig


def toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    X = rng.normal(size=(n, 8, 30)).astype(np.float32)
    X[np.arange(n), y, :] += 3.0  # class k lights up feature row k
    return X, y


def small_model(seed=0):
    torch.manual_seed(seed)
    return create_model("mountzouris2023_cnn_atn", num_classes=4, input_shape=(8, 30),
                        channels=(8, 8, 8, 8, 8), kernel_sizes=(3, 3, 3, 3, 3), attention_units=16,
                        dropout=0.1)


def test_learns_and_keeps_best_epoch(tmp_path):
    X, y = toy_data()
    Xv, yv = toy_data(32, seed=1)
    cfg = TrainingConfig(max_epochs=12, batch_size=16, lr=1e-2, early_stopping_patience=None)
    trainer = Trainer(cfg, workdir=tmp_path, seed=0, progress=False)
    model = small_model()
    fit = trainer.fit(model, X, y, Xv, yv)
    assert fit.epochs_run == 12
    assert list(fit.history.columns[:3]) == ["epoch", "lr", "train_loss"]
    assert fit.history["val_ua"].max() == pytest.approx(fit.best_score)
    assert fit.history.loc[fit.history["val_ua"].idxmax(), "epoch"] == fit.best_epoch
    proba = trainer.predict_proba(model, Xv)
    assert proba.shape == (32, 4) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == yv).mean() > 0.9
    # The model handed back carries the best epoch's weights, the ones saved in best.pt.
    best = torch.load(tmp_path / "best.pt")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best[k])
    log = pd.read_csv(tmp_path / "log.csv")
    assert len(log) == 12 and not list(tmp_path.glob("*.tmp"))


def test_early_stopping_stops():
    X, y = toy_data()
    rng = np.random.default_rng(5)
    yv = rng.integers(0, 4, 32)  # a validation set it cannot improve on
    cfg = TrainingConfig(max_epochs=50, batch_size=16, early_stopping_patience=2, monitor="val_loss")
    fit = Trainer(cfg, seed=0, progress=False).fit(small_model(), X, y, toy_data(32, 1)[0], yv)
    assert fit.epochs_run < 50
    assert fit.epochs_run - fit.best_epoch == 2


def test_lr_milestones():
    X, y = toy_data(32)
    cfg = TrainingConfig(max_epochs=4, batch_size=16, lr=1e-3, lr_milestones=[2], early_stopping_patience=None)
    fit = Trainer(cfg, seed=0, progress=False).fit(small_model(), X, y)
    assert fit.history["lr"].tolist() == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4])


def test_resume_reproduces_uninterrupted_run(tmp_path):
    X, y = toy_data()
    Xv, yv = toy_data(32, seed=1)
    full = TrainingConfig(max_epochs=6, batch_size=16, early_stopping_patience=None)
    ref_model = small_model()
    ref = Trainer(full, workdir=tmp_path / "ref", seed=3, progress=False).fit(ref_model, X, y, Xv, yv)

    # "Interrupt" after 3 epochs: a run with max_epochs=3 leaves the same checkpoint as epoch 3 of the full run,
    # except for its finished flag, which we clear as a crash would have.
    part = Trainer(full.model_copy(update={"max_epochs": 3}), workdir=tmp_path / "run", seed=3, progress=False)
    part.fit(small_model(), X, y, Xv, yv)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    state["finished"] = False
    # The fingerprint includes max_epochs; rewrite it as the full-length run would have.
    from serkit.training.trainer import _state_fingerprint

    state["fingerprint"] = _state_fingerprint(small_model(), full, len(X), 3)
    torch.save(state, tmp_path / "run" / "last.pt")

    resumed_model = small_model(seed=99)  # different init: everything must come from the checkpoint
    res = Trainer(full, workdir=tmp_path / "run", seed=3, progress=False).fit(resumed_model, X, y, Xv, yv)
    assert res.resumed_from == 4
    pd.testing.assert_frame_equal(res.history, ref.history)
    for k, v in ref_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[k], v, rtol=0, atol=0)


def test_finished_run_is_not_trained_again(tmp_path):
    X, y = toy_data(32)
    cfg = TrainingConfig(max_epochs=2, batch_size=16)
    Trainer(cfg, workdir=tmp_path, seed=0, progress=False).fit(small_model(), X, y)
    again = Trainer(cfg, workdir=tmp_path, seed=0, progress=False).fit(small_model(), X, y)
    assert again.resumed_from == 3 and again.epochs_run == 2


def test_checkpoint_of_other_config_is_refused(tmp_path):
    X, y = toy_data(32)
    Trainer(TrainingConfig(max_epochs=1), workdir=tmp_path, seed=0, progress=False).fit(small_model(), X, y)
    with pytest.raises(ConfigError, match="another model, config"):
        Trainer(TrainingConfig(max_epochs=1, lr=0.5), workdir=tmp_path, seed=0, progress=False).fit(
            small_model(), X, y)


def test_corrupt_checkpoint_is_reported(tmp_path):
    X, y = toy_data(32)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        Trainer(TrainingConfig(max_epochs=1), workdir=tmp_path, progress=False).fit(small_model(), X, y)


def test_bad_inputs():
    X, y = toy_data(8)
    with pytest.raises(ValueError, match="8 items but y_train has 7"):
        Trainer(progress=False).fit(small_model(), X, y[:7])
    with pytest.raises(ValueError, match="training split is empty"):
        Trainer(progress=False).fit(small_model(), X[:0], y[:0])
    with pytest.raises(Exception, match="lr"):
        TrainingConfig(lr=-1)


def test_mixup_loss_matches_hand_computation():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 30, 4))
    X, y = toy_data(16)
    xb, yb = torch.as_tensor(X), torch.as_tensor(y)
    trainer = Trainer(TrainingConfig(mixup_alpha=0.4, label_smoothing=0.1), seed=0, progress=False)
    loss_fn = trainer._loss(y, model)
    got = trainer._mixup_loss(model, loss_fn, [xb], yb, torch.Generator().manual_seed(7))
    # The same draws, in the same order, from a generator in the same state.
    gen = torch.Generator().manual_seed(7)
    lam = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen))).beta(0.4, 0.4)
    perm = torch.randperm(16, generator=gen)
    logits = model(lam * xb + (1 - lam) * xb[perm])
    # Mixing the two losses is cross-entropy against the mixed (smoothed) one-hot target.
    eye = torch.eye(4) * 0.9 + 0.1 / 4
    target = lam * eye[yb] + (1 - lam) * eye[yb[perm]]
    want = -(target * torch.log_softmax(logits, 1)).sum()
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)
    assert 0 < lam < 1 and not torch.equal(perm, torch.arange(16))


def test_mixup_training_learns_and_is_reproducible():
    X, y = toy_data()
    Xv, yv = toy_data(32, seed=1)
    cfg = TrainingConfig(max_epochs=10, batch_size=16, lr=1e-2, early_stopping_patience=None, mixup_alpha=0.4)
    fits, probas = [], []
    for _ in range(2):
        trainer = Trainer(cfg, seed=3, progress=False)
        model = small_model()
        fits.append(trainer.fit(model, X, y, Xv, yv))
        probas.append(trainer.predict_proba(model, Xv))
    assert (probas[0].argmax(1) == yv).mean() > 0.9
    np.testing.assert_allclose(fits[0].history["train_loss"], fits[1].history["train_loss"], rtol=1e-6)
    plain = Trainer(cfg.model_copy(update={"mixup_alpha": 0.0}), seed=3, progress=False).fit(small_model(), X, y)
    # Mixed targets cannot be fitted exactly, so the training loss stays above plain training's.
    assert fits[0].history["train_loss"].iloc[-1] > plain.history["train_loss"].iloc[-1]
    with pytest.raises(Exception, match="mixup_alpha"):
        TrainingConfig(mixup_alpha=-0.1)
