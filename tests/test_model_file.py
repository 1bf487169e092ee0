"""Model files (``serkit-model/1``) written before the learner interface still load and predict the same; files of
another format fail with a message naming it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import serkit
from conftest import tone
from serkit.audio import AudioConfig
from serkit.audio.config import prepare_signal
from serkit.errors import ConfigError
from serkit.features import parse_frontend_config
from serkit.features.extractor import make_feature_extractor
from serkit.features.normalization import normalizer_from_state
from serkit.inference.api import shipped_model_path
from serkit.models import create_model
from serkit.models.bundle import FORMAT, ModelBundle
from serkit.models.learner import EstimatorLearner, TorchLearner


def _old_reader_proba(payload: dict, X: np.ndarray) -> np.ndarray:
    """What the reader before the learner interface did with a torch payload: build, load the state dict, softmax."""
    recipe = payload["recipe"]
    opts = {k: v for k, v in recipe["model"].items() if k not in ("name", "init_from", "init_prefixes")}
    model = create_model(recipe["model"]["name"], num_classes=len(payload["labels"]),
                         input_shape=tuple(payload["input_shape"]), **opts)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(X, dtype=torch.float32)), dim=1).numpy()


def test_the_shipped_cnn_model_loads_and_predicts_as_before():
    path = shipped_model_path("cnn")  # the default model before the Whisper one, a serkit-model/1 torch payload
    payload = torch.load(path, map_location="cpu", weights_only=False)
    assert payload["format"] == FORMAT == "serkit-model/1"
    bundle = ModelBundle.load(path)
    assert isinstance(bundle.learner, TorchLearner) and bundle.labels == payload["labels"]

    recipe = payload["recipe"]
    audio = AudioConfig.model_validate(recipe["audio"])
    extractor = make_feature_extractor(audio, parse_frontend_config(recipe["frontend"]),
                                       pooling=recipe.get("pooling", "none"))
    clips = [tone(2.0, 16000, f) for f in (220.0, 880.0, 3000.0)]
    prepared = [prepare_signal(c, 16000, audio) for c in clips]
    X = normalizer_from_state(payload["normalizer"]).transform(
        extractor.pool(extractor.from_signals(prepared)), speakers=np.array(["<predict>"] * len(clips)))
    want = _old_reader_proba(payload, X)
    np.testing.assert_allclose(bundle.learner.predict_proba(X), want, rtol=1e-5, atol=1e-6)
    # the whole API on top of it: load_model("cnn"), features, normaliser, model
    model = serkit.load_model("cnn")
    np.testing.assert_allclose(model.predict_proba(clips, sample_rate=16000), want, rtol=1e-4, atol=1e-5)


def test_a_classical_model_file_written_the_old_way_loads(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.standard_normal((60, 4)) + 2.0 * np.eye(3, 4)[y]
    estimator = create_model("logreg", num_classes=3, C=1.0)
    estimator.fit(X, y)
    old = {"format": "serkit-model/1", "recipe": {"name": "old", "model": {"name": "logreg", "C": 1.0}},
           "labels": ["a", "b", "c"], "input_shape": [4], "normalizer": None, "info": {"fold": "f1"},
           "kind": "sklearn", "estimator": estimator}
    torch.save(old, tmp_path / "old.pt")
    bundle = ModelBundle.load(tmp_path / "old.pt")
    assert isinstance(bundle.learner, EstimatorLearner) and bundle.info == {"fold": "f1"}
    np.testing.assert_array_equal(bundle.learner.predict_proba(X), estimator.predict_proba(X))


@pytest.mark.parametrize("payload, message", [
    ({"format": "serkit-model/2", "kind": "torch"},
     r"x\.pt: model file format 'serkit-model/2' is not readable by this serkit \(it reads serkit-model/1\)"),
    ({"weights": 1}, r"x\.pt: not a serkit model file \(expected format serkit-model/1\)"),
])
def test_another_format_is_a_clear_error(tmp_path, payload, message):
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match=message):
        ModelBundle.load(tmp_path / "x.pt")
