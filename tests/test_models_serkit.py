"""serkit's own compact CNN (the default model's network)."""

from __future__ import annotations

import pytest
import torch

from conftest import fit_tiny_batch
from serkit.models import create_model

SHAPES = [(64, 401), (3, 40, 300)]


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_any_length(shape):
    model = create_model("serkit_cnn", num_classes=6, input_shape=shape).eval()
    assert model(torch.randn(3, *shape)).shape == (3, 6)
    shorter = (*shape[:-1], 57)  # pooling over time: other clip lengths run too
    assert model(torch.randn(2, *shorter)).shape == (2, 6)


def test_parameter_count_recorded():
    # convs 64*64*5 + 2 * 64*64*3 + 64*128 = 53248, batch norms 2 * (3*64 + 128) + 2*64 = 768,
    # attention 128*32+32 + 32+1 = 4161, embedding 256*64 = 16384, classifier 64*6+6 = 390
    model = create_model("serkit_cnn", num_classes=6, input_shape=(64, 401))
    assert sum(p.numel() for p in model.parameters()) == 74_951


def test_attention_weights_sum_to_one():
    model = create_model("serkit_cnn", num_classes=6, input_shape=(64, 100)).eval()
    model(torch.randn(4, 64, 100))
    w = model.pool.last_weights
    assert w.shape == (4, 50)  # the first block's stride 2 halves the frame rate
    torch.testing.assert_close(w.sum(1), torch.ones(4))


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_reach_every_parameter(shape):
    model = create_model("serkit_cnn", num_classes=4, input_shape=shape)
    model(torch.randn(5, *shape)).logsumexp(1).sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = create_model("serkit_cnn", num_classes=4, input_shape=(40, 60), dropout=0.0)
    x, y = torch.randn(8, 40, 60), torch.arange(8) % 4
    fit_tiny_batch(model, x, y, steps=60)
    assert (model.eval()(x).argmax(1) == y).all()


def test_save_load_round_trip(tmp_path):
    model = create_model("serkit_cnn", num_classes=6, input_shape=(64, 80)).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = create_model("serkit_cnn", num_classes=6, input_shape=(64, 80)).eval()
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    x = torch.randn(2, 64, 80)
    torch.testing.assert_close(model(x), other(x), rtol=0, atol=0)


def test_bad_input_shape_named():
    with pytest.raises(ValueError, match="input_shape"):
        create_model("serkit_cnn", num_classes=6, input_shape=(64,))
