"""an2021 / islam parallel CNN + Transformer, and islam's device map (model parallelism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serkit.errors import ConfigError
from serkit.models import create_model, list_models, model_spec
from serkit.models.bundle import ModelBundle
from serkit.training.trainer import Trainer, TrainingConfig

NAME = "an2021_parallel_cnn_transformer"
PAPER_SHAPE = (40, 282)  # 40 MFCCs of 3 s at 48 kHz, hop 512
SMALL_SHAPE = (40, 64)
CPU_MAP = {"cnn1": "cpu", "cnn2": "cpu", "transformer": "cpu", "head": "cpu"}


def make(shape=SMALL_SHAPE, num_classes=8, **options):
    torch.manual_seed(0)
    return create_model(NAME, num_classes=num_classes, input_shape=shape, **options)


def test_registered_under_both_papers():
    assert {NAME, "islam_parallel_cnn_transformer"} <= set(list_models())
    assert "an2021" in model_spec(NAME).paper
    assert model_spec("islam_parallel_cnn_transformer").defaults == {"device_map": "auto"}


def test_paper_input_shapes():
    model = make(PAPER_SHAPE).eval()
    # 40 x 282 -> pools 2, 4, 4 -> 1 x 8 maps of 64 channels per branch; 282 // 4 = 70 tokens of 40 features.
    assert [c.out_features for c in model.cnns] == [512, 512]
    assert model.transformer.out_features == 40
    assert model.head.in_features == 1064
    x = torch.randn(3, *PAPER_SHAPE)
    assert model.transformer.tokens(x).shape == (3, 70, 40)
    assert model(x).shape == (3, 8)


def test_parameter_count_is_recorded():
    # A change of architecture must be noticed: the count for the paper's input and 8 classes.
    model = make(PAPER_SHAPE)
    assert sum(p.numel() for p in model.parameters()) == 248_488
    branch = sum(p.numel() for p in model.cnns[0].parameters())
    assert branch == 160 + 32 + 4_640 + 64 + 18_496 + 128  # convs (w + b) + BatchNorm (gamma + beta)


def test_bad_shapes_and_options():
    with pytest.raises(ValueError, match="n_mfcc, frames"):
        make((40,))
    with pytest.raises(ValueError, match="shrink the map"):
        make((40, 16))
    with pytest.raises(ValueError, match="transformer_heads=3"):
        make(transformer_heads=3)


def test_gradients_reach_every_parameter():
    model = make(PAPER_SHAPE).train()
    model(torch.randn(4, *PAPER_SHAPE)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_overfits_a_tiny_batch():
    # Dropout off so that the training-mode forward (batch statistics in BatchNorm) is deterministic.
    torch.manual_seed(0)
    shape = (40, 32)
    x, y = torch.randn(8, *shape), torch.arange(8) % 4
    model = make(shape, num_classes=4, conv_dropout=0.0, transformer_dropout=0.0).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(30):
        opt.zero_grad()
        logits = model(x)
        if (logits.argmax(1) == y).all():
            break
        torch.nn.functional.cross_entropy(logits, y).backward()
        opt.step()
    assert (logits.argmax(1) == y).all(), f"not fitted after {step + 1} steps"


def test_attention_weights_are_softmax_rows_and_mode_is_restored():
    model = make(PAPER_SHAPE).train()
    weights = model.attention_weights(torch.randn(2, *PAPER_SHAPE))
    assert len(weights) == 4
    for w in weights:
        assert w.shape == (2, 4, 70, 70)
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 70))
    assert model.training and model.transformer.training


@pytest.mark.parametrize("name", [NAME, "islam_parallel_cnn_transformer"])
def test_bundle_round_trip(name, tmp_path):
    torch.manual_seed(1)
    model = create_model(name, num_classes=5, input_shape=SMALL_SHAPE).eval()
    x = torch.randn(3, *SMALL_SHAPE)
    with torch.no_grad():
        expected = model(x)
    recipe = {"model": {"name": name}}
    ModelBundle(recipe, list("abcde"), SMALL_SHAPE, model, None, {}).save(tmp_path / "m.pt")
    loaded = ModelBundle.load(tmp_path / "m.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), expected, rtol=0, atol=0)


# -- device map -----------------------------------------------------------------------------------------


def mapped_and_plain(device_map, shape=SMALL_SHAPE):
    plain = make(shape)
    mapped = make(shape, device_map=device_map)
    mapped.load_state_dict(plain.state_dict())
    return plain, mapped


def outputs_and_grads(model, x, y):
    torch.manual_seed(123)  # the same dropout masks in both models
    model.train()
    model.zero_grad()
    out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    return out.detach().cpu(), {n: p.grad.detach().cpu() for n, p in model.named_parameters()}


def assert_parity(plain, mapped, atol=0.0, rtol=0.0):
    x, y = torch.randn(6, *SMALL_SHAPE), torch.arange(6) % 3
    out_p, grad_p = outputs_and_grads(plain, x, y)
    out_m, grad_m = outputs_and_grads(mapped, x, y)
    torch.testing.assert_close(out_m, out_p, atol=atol, rtol=rtol)
    assert grad_m.keys() == grad_p.keys()
    for name in grad_p:
        torch.testing.assert_close(grad_m[name], grad_p[name], atol=atol, rtol=rtol, msg=name)
    plain.eval(), mapped.eval()
    with torch.no_grad():
        torch.testing.assert_close(mapped(x).cpu(), plain(x), atol=atol, rtol=rtol)


def test_cpu_device_map_gives_the_same_outputs_and_gradients():
    plain, mapped = mapped_and_plain(CPU_MAP)
    assert mapped.device_map == CPU_MAP
    assert_parity(plain, mapped)


def test_partial_map_fills_in_the_head_device_and_errors_name_the_part():
    model = make(device_map={"head": "cpu"})
    assert model.device_map == CPU_MAP
    with pytest.raises(ConfigError, match=r"unknown part\(s\) \['cnn3'\]"):
        make(device_map={"cnn3": "cpu"})
    with pytest.raises(ConfigError, match="device_map.cnn2: 'cuda:7' asked for"):
        make(device_map={"cnn2": "cuda:7"})
    with pytest.raises(ConfigError, match="device_map.head: 'gpu0' is not a device"):
        make(device_map={"head": "gpu0"})
    with pytest.raises(ConfigError, match="expected 'auto'"):
        make(device_map="balanced")
    with pytest.raises(ConfigError, match="meta device"):
        make(device_map={"transformer": "meta"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback of 'auto'")
def test_auto_map_runs_unchanged_on_one_cpu():
    model = make(device_map="auto")
    assert model.device_map == CPU_MAP
    assert all(d.type == "cpu" for d in model.devices().values())


def test_mapped_model_keeps_its_placement_under_to():
    # The trainer calls model.to(training.device): a mapped model ignores the device but applies dtype casts.
    mapped = make(device_map=CPU_MAP)
    assert mapped.to("meta") is mapped
    assert all(d.type == "cpu" for d in mapped.devices().values())
    mapped.to(torch.float64)
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in mapped.parameters())
    plain = make()
    plain.to("meta")
    assert all(d.type == "meta" for d in plain.devices().values())


def test_trainer_gives_the_same_result_with_and_without_a_map(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, *SMALL_SHAPE)).astype(np.float32)
    y = np.arange(24) % 3
    cfg = TrainingConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=8, max_epochs=2,
                         early_stopping_patience=None)
    results = []
    for device_map in (None, CPU_MAP):
        model = make(num_classes=3, device_map=device_map)
        fit = Trainer(cfg, seed=0, progress=False).fit(model, X[:18], y[:18], X[18:], y[18:])
        proba = Trainer(cfg, progress=False).predict_proba(model, X[18:])
        results.append((fit.history, proba))
    (hist_a, proba_a), (hist_b, proba_b) = results
    np.testing.assert_array_equal(hist_a["train_loss"].to_numpy(), hist_b["train_loss"].to_numpy())
    np.testing.assert_array_equal(proba_a, proba_b)


# -- on GPUs (skipped on CPU-only machines) -----------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.device_count() < 1, reason="needs a CUDA device")
def test_map_across_cpu_and_gpu_matches_the_cpu_model():
    plain, mapped = mapped_and_plain({"cnn1": "cuda:0", "cnn2": "cpu", "transformer": "cuda:0", "head": "cpu"})
    devices = mapped.devices()
    assert devices["cnn1"].type == "cuda" and devices["cnn2"].type == "cpu"
    assert_parity(plain, mapped, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_map_across_two_gpus_matches_the_cpu_model_and_trains(tmp_path):
    gpu_map = {"cnn1": "cuda:0", "cnn2": "cuda:1", "transformer": "cuda:1", "head": "cuda:0"}
    plain, mapped = mapped_and_plain(gpu_map)
    assert {str(d) for d in mapped.devices().values()} == {"cuda:0", "cuda:1"}
    assert_parity(plain, mapped, atol=1e-4, rtol=1e-4)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, *SMALL_SHAPE)).astype(np.float32)
    y = np.arange(16) % 2
    cfg = TrainingConfig(optimizer="sgd", lr=0.01, batch_size=8, max_epochs=2, device="cuda:0")
    Trainer(cfg, seed=0, progress=False, workdir=tmp_path).fit(mapped, X, y, X, y)
    assert {str(d) for d in mapped.devices().values()} == {"cuda:0", "cuda:1"}
    auto = make(device_map="auto")
    assert {str(d) for d in auto.devices().values()} == {"cuda:0", "cuda:1"}
