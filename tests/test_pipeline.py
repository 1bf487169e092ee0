"""The prediction pipeline: one object from audio to probabilities, for one model file or a fold ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tone
from serkit.audio.config import prepare_signal
from serkit.errors import ConfigError
from serkit.inference import EmotionPipeline, load_model
from serkit.inference.export import export_onnx
from serkit.inference.onnx_runtime import OnnxClassifier
from serkit.models.bundle import ModelBundle
from test_api import SR, TONE_LABELS, tiny_model_file


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_model_file(tmp_path_factory)


def _signals(pipeline: EmotionPipeline) -> list[np.ndarray]:
    return [prepare_signal(tone(0.8, SR, f), SR, pipeline.audio) for f in TONE_LABELS.values()]


def test_a_run_folder_is_the_mean_of_its_fold_pipelines(tmp_path, tiny_model):
    bundle = ModelBundle.load(tiny_model)
    with torch.no_grad():  # a second "fold": the same network with other output weights
        second = ModelBundle.load(tiny_model)
        for p in second.model.parameters():
            p.mul_(0.5)
    for fold, b in (("f1", bundle), ("f2", second)):
        (tmp_path / "run" / "folds" / fold).mkdir(parents=True)
        b.save(tmp_path / "run" / "folds" / fold / "model.pt")
    run = EmotionPipeline.load(tmp_path / "run")
    assert len(run.members) == 2 and run.labels == list(TONE_LABELS)
    signals = _signals(run)
    one = [EmotionPipeline.load(tmp_path / "run" / "folds" / f / "model.pt").predict_prepared(signals)
           for f in ("f1", "f2")]
    assert not np.allclose(one[0], one[1])
    np.testing.assert_allclose(run.predict_prepared(signals), (one[0] + one[1]) / 2, rtol=1e-6)
    # the Python API goes through the same pipeline
    np.testing.assert_allclose(load_model(tmp_path / "run").proba_of_prepared(signals), (one[0] + one[1]) / 2,
                               rtol=1e-6)


def test_models_that_disagree_on_labels_are_not_ensembled(tmp_path, tiny_model):
    other = ModelBundle.load(tiny_model)
    other.labels = list(reversed(other.labels))
    other.save(tmp_path / "b.pt")
    ModelBundle.load(tiny_model).save(tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="differ in labels"):
        EmotionPipeline.load(tmp_path)


def test_the_onnx_backend_swaps_the_learners_only(tiny_model, tmp_path):
    torch_pipeline = EmotionPipeline.load(tiny_model)
    onnx_pipeline = EmotionPipeline.load(tiny_model, backend="onnx")
    assert onnx_pipeline.members[0].learner.kind == "onnx" and torch_pipeline.members[0].learner.kind == "torch"
    signals = _signals(torch_pipeline)
    want = torch_pipeline.predict_prepared(signals)
    np.testing.assert_allclose(onnx_pipeline.predict_prepared(signals), want, atol=1e-5)
    # an exported file is an ONNX learner already, on either backend
    exported = export_onnx(tiny_model, tmp_path / "tiny.onnx")
    for backend in ("torch", "onnx"):
        from_file = EmotionPipeline.load(exported, backend=backend)
        assert isinstance(from_file.members[0].learner, OnnxClassifier)
        np.testing.assert_allclose(from_file.predict_prepared(signals), want, atol=1e-5)
    with pytest.raises(ConfigError, match="backend: expected 'torch' or 'onnx'"):
        EmotionPipeline.load(tiny_model, backend="tflite")
