"""ONNX export of every zoo model, parity of onnxruntime with PyTorch, bundles, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from serkit.cli import app
from serkit.errors import ConfigError
from serkit.inference.export import (
    ONNX_NOT_EXPRESSIBLE,
    export_module_onnx,
    export_onnx,
    onnx_classifier_for_bundle,
    onnx_support,
)
from serkit.inference.onnx_runtime import OnnxClassifier
from serkit.models import create_model, list_models, model_spec
from serkit.models.bundle import ModelBundle

RECIPES = Path(__file__).parents[1] / "recipes"
# Small valid per-item input shapes, to keep the export of every model fast. A model missing here falls back to
# the shapes of its shipped recipe in recipes/.
# Multi-input models (those with a ``streams`` option) get one of these per stream.
STREAM_SHAPES: dict[str, tuple[int, ...]] = {"raw": (1, 1024), "mfcc": (32, 32), "stft": (32, 32)}
# onnxruntime against torch on the same float32 inputs: probabilities agree to this (observed <= 1e-7).
ATOL = 1e-5


def _recipe_shape(name: str):
    """Per-item feature shape(s) of the first shipped recipe that uses model ``name``, or None."""
    from serkit.features import create_frontend
    from serkit.recipe import Recipe, load_recipe

    for path in sorted(RECIPES.glob("*.yaml")):
        recipe = load_recipe(path)
        if not isinstance(recipe, Recipe) or recipe.model.name != name:  # a fusion recipe has no model of its own
            continue
        num_samples = recipe.audio.num_samples
        if recipe.segments is not None:
            num_samples = round(recipe.segments.length * recipe.audio.sample_rate)
        shapes = {}
        for stream, cfg in recipe.frontend_configs.items():
            shape = create_frontend(cfg, recipe.audio.sample_rate).output_shape(num_samples)
            if recipe.pooling != "none":
                shape = shape[:-1] if recipe.pooling == "mean" else (*shape[:-2], 2 * shape[-2])
            shapes[stream] = tuple(shape)
        return shapes if recipe.frontends is not None else shapes["features"]
    return None


def input_shape_for(name: str):
    streams = model_spec(name).defaults.get("streams")
    if streams is not None:
        unknown = [s for s in streams if s not in STREAM_SHAPES]
        if not unknown:
            return {s: STREAM_SHAPES[s] for s in streams}
    elif model_spec(name).example_input is not None:
        return model_spec(name).example_input
    shape = _recipe_shape(name)
    if shape is None:
        pytest.fail(f"no input shape for the new model {name!r}: register it with example_input=(a small valid "
                    "per-item shape), or ship a recipe for it in recipes/")
    return shape


def _random_inputs(shape, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    if isinstance(shape, dict):
        return {s: rng.standard_normal((n, *sh)).astype(np.float32) for s, sh in shape.items()}
    return rng.standard_normal((n, *shape)).astype(np.float32)


def _torch_proba(model, X) -> np.ndarray:
    model.eval()
    streams = getattr(model, "input_streams", None)
    tensors = [torch.from_numpy(X[s]) for s in (streams or list(X))] if isinstance(X, dict) else [torch.from_numpy(X)]
    with torch.no_grad():
        return torch.softmax(model(*tensors), dim=1).numpy()


def _build(name: str, shape, num_classes: int = 5):
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, input_shape=shape).eval()
    # Non-trivial batch-norm statistics, so that their folding into the graph is checked too.
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_exports_with_parity_or_is_listed(name):
    reason = onnx_support()[name]
    if model_spec(name).kind != "torch":
        assert reason, f"{name}: a non-torch model must be listed as not exportable"
        return
    shape = input_shape_for(name)
    model = _build(name, shape)
    if reason is not None:
        # Listed as not expressible: the export must really fail, else the list is stale.
        with pytest.raises(ConfigError, match="ONNX export failed"):
            export_module_onnx(model, shape)
        return
    clf = OnnxClassifier(export_module_onnx(model, shape))
    for n in (3, 1):  # exported with a batch of 2: the batch axis is free
        X = _random_inputs(shape, n, seed=n)
        got = clf.predict_proba(X)
        want = _torch_proba(model, X)
        assert got.shape == want.shape == (n, 5)
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=name)
        assert (got.argmax(1) == want.argmax(1)).all()


def test_not_expressible_list_matches_what_export_reports():
    """The CLI's --list shows exactly the models onnx_support() marks, torch ones from ONNX_NOT_EXPRESSIBLE."""
    support = onnx_support()
    assert set(support) == set(list_models())
    torch_unsupported = {n for n, r in support.items() if r and model_spec(n).kind == "torch"}
    assert torch_unsupported == set(ONNX_NOT_EXPRESSIBLE)
    result = CliRunner().invoke(app, ["export", "--list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"^\W\s*(\w+)\s+\W\s*(yes|no)\s", result.output, flags=re.MULTILINE))
    assert rows == {n: ("no" if r else "yes") for n, r in support.items()}


def _bundle(tmp_path: Path, name: str = "mountzouris2023_cnn_atn", shape=(40, 60)) -> tuple[ModelBundle, Path]:
    model = _build(name, shape, num_classes=4)
    rng = np.random.default_rng(0)
    normalizer = {"scope": "global", "axis": None, "unseen": "error", "ndim": 3,
                  "mean": torch.from_numpy(rng.standard_normal((40, 1)).astype(np.float32)),
                  "std": torch.ones(40, 1), "speaker_mean": {}, "speaker_std": {}}
    recipe = {"name": "tiny", "model": {"name": name}, "audio": {"sample_rate": 16000, "duration": 2.0},
              "frontend": {"name": "mfcc", "n_mfcc": 40}, "pooling": "none"}
    bundle = ModelBundle(recipe, ["angry", "happy", "neutral", "sad"], shape, model, normalizer, {"fold": "f1"})
    return bundle, bundle.save(tmp_path / "model.pt")


def test_bundle_export_metadata_and_parity(tmp_path):
    bundle, path = _bundle(tmp_path)
    out = export_onnx(path, tmp_path / "m.onnx")
    clf = OnnxClassifier(out)
    assert clf.labels == ["angry", "happy", "neutral", "sad"]
    assert clf.input_names == ["features"]
    assert clf.metadata["format"] == "serkit-onnx/1" and clf.metadata["model"] == "mountzouris2023_cnn_atn"
    assert clf.metadata["frontend"]["n_mfcc"] == 40 and clf.metadata["audio"]["duration"] == 2.0
    np.testing.assert_allclose(clf.metadata["normalizer"]["mean"], bundle.normalizer["mean"].numpy(), atol=1e-7)
    X = _random_inputs((40, 60), 7)
    want = _torch_proba(bundle.model, X)
    np.testing.assert_allclose(clf.predict_proba(X, batch_size=3), want, atol=ATOL)
    in_memory = onnx_classifier_for_bundle(ModelBundle.load(path), num_threads=1)
    np.testing.assert_allclose(in_memory.predict_proba(X), want, atol=ATOL)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left nothing behind


def test_dynamic_int8_quantisation_stays_close(tmp_path):
    _, path = _bundle(tmp_path, "mountzouris2023_lstm_atn", (40, 30))
    bundle = ModelBundle.load(path)
    fp32, int8 = onnx_classifier_for_bundle(bundle), onnx_classifier_for_bundle(bundle, quantize=True)
    assert int8.metadata["quantized"] is True
    X = _random_inputs((40, 30), 16)
    diff = np.abs(int8.predict_proba(X) - fp32.predict_proba(X)).max()
    assert 0 < diff < 0.02  # int8 weights change the outputs a little, not much


def test_multi_input_feeds_by_name_or_position():
    shape = {"raw": (1, 2048), "mfcc": (64, 64)}
    model = _build("ha2024_type1", shape)
    clf = OnnxClassifier(export_module_onnx(model, shape))
    assert clf.input_names == list(model.input_streams)
    X = _random_inputs(shape, 2)
    by_name = clf.predict_proba(X)
    by_position = clf.predict_proba(*[X[s] for s in clf.input_names])
    np.testing.assert_array_equal(by_name, by_position)
    with pytest.raises(ConfigError, match="missing"):
        clf.predict_proba({"raw": X["raw"]})
    with pytest.raises(ConfigError, match="takes 2 input"):
        clf.predict_proba(X["raw"])
    with pytest.raises(ConfigError, match="number of items"):
        clf.predict_proba(X["raw"], X["mfcc"][:1])


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        OnnxClassifier(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="junk.onnx: onnxruntime cannot load it"):
        OnnxClassifier(junk)


def test_cli_exports_a_bundle_and_a_run_and_refuses_the_svm(tmp_path):
    runner = CliRunner()
    _, path = _bundle(tmp_path)
    r = runner.invoke(app, ["export", "--model", str(path), "--format", "onnx", "--out", str(tmp_path / "one.onnx")])
    assert r.exit_code == 0, r.output
    assert OnnxClassifier(tmp_path / "one.onnx").labels == ["angry", "happy", "neutral", "sad"]

    run = tmp_path / "run"
    for fold in ("fold01", "fold02"):
        (run / "folds" / fold).mkdir(parents=True)
        (run / "folds" / fold / "model.pt").write_bytes(path.read_bytes())
    r = runner.invoke(app, ["export", "--model", str(run)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (run / "onnx").iterdir()) == ["fold01.onnx", "fold02.onnx"]

    svm = create_model("svm", num_classes=2, C=1.0)
    rng = np.random.default_rng(0)
    svm.fit(rng.standard_normal((30, 4)), np.arange(30) % 2)
    svm_path = ModelBundle({"name": "s", "model": {"name": "svm"}}, ["a", "b"], (4,), svm, None, {}).save(
        tmp_path / "svm.pt")
    r = runner.invoke(app, ["export", "--model", str(svm_path)], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "'svm' cannot be exported to ONNX" in r.output and "skl2onnx" in r.output
    r = runner.invoke(app, ["export", "--model", str(path), "--format", "tflite"], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "only 'onnx'" in r.output


def test_metadata_is_json(tmp_path):
    import onnx

    _, path = _bundle(tmp_path)
    proto = onnx.load(str(export_onnx(path, tmp_path / "m.onnx")))
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["serkit.labels"] == ["angry", "happy", "neutral", "sad"]
    assert props["serkit.inputs"] == {"features": [40, 60]}


def test_exported_onnx_loads_through_load_model_predict_and_analyze(tiny_model_path, tmp_path):
    """Issue 15.3: the file `serkit export` writes is a model for load_model, predict --model and analyze --model,
    with the torch model's probabilities within the parity tolerance."""
    import soundfile as sf

    from conftest import tone
    from serkit.inference import load_model

    onnx_path = tmp_path / "tiny.onnx"
    r = CliRunner().invoke(app, ["export", "--model", str(tiny_model_path), "--out", str(onnx_path)])
    assert r.exit_code == 0, r.output
    torch_model = load_model(tiny_model_path, vad="energy")
    onnx_model = load_model(onnx_path, vad="energy")
    assert onnx_model.labels == torch_model.labels and onnx_model.window_seconds == torch_model.window_seconds
    inputs = [tone(0.8, 16000, f, amp=0.3) for f in (200.0, 450.0, 1000.0, 2200.0)] + [tone(5.0, 16000, 450.0)]
    np.testing.assert_allclose(onnx_model.predict_proba(inputs, sample_rate=16000),
                               torch_model.predict_proba(inputs, sample_rate=16000), atol=ATOL)
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(0.8, 16000, 1000.0, amp=0.3), 16000)
    r = CliRunner().invoke(app, ["predict", "--model", str(onnx_path), str(clip), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["predictions"][0]["label"] == "sad"
    r = CliRunner().invoke(app, ["analyze", str(clip), "--model", str(onnx_path), "--vad", "energy", "--out",
                                 str(tmp_path / "analysis")])
    assert r.exit_code == 0, r.output
    # a folder of exported files (what `serkit export --model <run>` writes) is an ensemble like a run folder
    np.testing.assert_allclose(load_model(tmp_path, vad="energy").predict_proba(inputs, sample_rate=16000),
                               torch_model.predict_proba(inputs, sample_rate=16000), atol=ATOL)
    foreign = tmp_path / "foreign.onnx"
    export_module_onnx(_build("mountzouris2023_sdnn", (20,), num_classes=2), (20,), foreign)
    with pytest.raises(ConfigError, match="foreign.onnx: not an ONNX model exported by serkit"):
        load_model(foreign)
