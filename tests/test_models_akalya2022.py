"""akalya2022: the ACRNN, the 1D CNN-LSTM and the temporal 2D CNN on log mels + deltas of 3 s segments."""

from __future__ import annotations

import pytest
import torch

from conftest import fit_tiny_batch
from serkit.features import create_frontend
from serkit.models import create_model, model_spec
from serkit.models.bundle import ModelBundle

NAMES = ["akalya2022_acrnn", "akalya2022_cnn1d_lstm", "akalya2022_cnn2d"]
# The paper's input: 3 s at 16 kHz, 40 mels, 10 ms hop -> 301 frames, 3 channels (static, delta, delta-delta).
PAPER_SHAPE = (3, 40, 301)
# Small widths for the training tests, so that they run in a second on a CPU.
SMALL = {"channels": [8, 16], "head_units": 16}
SMALL_EXTRA = {"akalya2022_acrnn": {"linear_units": 32, "rnn_units": 16},
               "akalya2022_cnn1d_lstm": {"rnn_units": 16},
               "akalya2022_cnn2d": {"linear_units": 32}}


def small(name: str) -> dict:
    return {**SMALL, **SMALL_EXTRA[name]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_input_comes_from_the_frontend():
    frontend = create_frontend("logmel_deltas", 16000)
    assert frontend.output_shape(3 * 16000) == PAPER_SHAPE


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_output_shapes_for_3s_segments(name):
    model = create_model(name, num_classes=4, input_shape=PAPER_SHAPE).eval()
    assert model.output_steps == 150  # 301 frames after the 2 x 2 max pooling
    x = torch.randn(2, *PAPER_SHAPE)
    with torch.no_grad():
        h = model.sequence(x)
        assert model(x).shape == (2, 4)
    # ACRNN: 256-d BiLSTM states per step; baselines: LSTM 128 / the 768-unit per-step layer.
    assert h.shape == {"akalya2022_acrnn": (2, 150, 256), "akalya2022_cnn1d_lstm": (2, 150, 128),
                       "akalya2022_cnn2d": (2, 150, 768)}[name]


def test_acrnn_layers_follow_the_paper():
    model = create_model("akalya2022_acrnn", num_classes=4, input_shape=PAPER_SHAPE)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 256, 256, 256]
    assert all(c.kernel_size == (5, 2) for c in convs)
    assert [m.kernel_size for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)] == [(2, 2)]
    # 256 channels x 20 mel bands per step -> 768 (section 2.3), BiLSTM 128 per direction, Dense 64 + BN.
    assert (model.step_linear.in_features, model.step_linear.out_features) == (5120, 768)
    assert model.rnn.bidirectional and model.rnn.hidden_size == 128
    assert isinstance(model.head[1], torch.nn.BatchNorm1d) and model.head[0].out_features == 64


@pytest.mark.parametrize("name,count", [
    # convs 3968 + 327936 + 3 x 655616, linear 5120 -> 768: 3932928, BiLSTM 919552, attention 256,
    # head 16448 + BN 128 + 260.
    ("akalya2022_acrnn", 7_168_324),
    # Conv1D 120 -> 128 (k5): 76928, 128 -> 256: 164096, LSTM 256 -> 128: 197632, head 8256 + 128 + 260.
    ("akalya2022_cnn1d_lstm", 447_300),
    # the ACRNN's convolutions and linear layer (6231680), head 768 -> 64: 49216 + 128 + 260.
    ("akalya2022_cnn2d", 6_281_284),
])
def test_parameter_counts_recorded(name, count):
    model = create_model(name, num_classes=4, input_shape=PAPER_SHAPE)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    # Full widths, a short input (24 frames) to keep it fast.
    model = create_model(name, num_classes=4, input_shape=(3, 40, 24))
    model(torch.randn(4, 3, 40, 24)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


@pytest.mark.parametrize("name", NAMES)
def test_overfits_a_tiny_batch(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, input_shape=(3, 20, 30), **small(name))
    x, y = torch.randn(8, 3, 20, 30), torch.arange(8) % 4
    fit_tiny_batch(model, x, y, steps=40)
    model.eval()
    assert (model(x).argmax(1) == y).all()


def test_attention_weights_sum_to_one():
    model = create_model("akalya2022_acrnn", num_classes=4, input_shape=(3, 20, 30), **small("akalya2022_acrnn"))
    model.eval()(torch.randn(5, 3, 20, 30))
    w = model.attention.last_weights
    assert w.shape == (5, 15) and (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(5))


@pytest.mark.parametrize("name", NAMES)
def test_bundle_round_trip_gives_identical_outputs(tmp_path, name):
    options = small(name)
    shape = (3, 20, 30)
    model = create_model(name, num_classes=4, input_shape=shape, **options).eval()
    recipe = {"model": {"name": name, **options}}
    ModelBundle(recipe, ["angry", "happy", "neutral", "sad"], shape, model, None, {}).save(tmp_path / "m.pt")
    loaded = ModelBundle.load(tmp_path / "m.pt")
    x = torch.randn(3, *shape)
    torch.testing.assert_close(model(x), loaded.model(x), rtol=0, atol=0)


def test_plain_log_mels_are_one_channel_and_bad_options_fail():
    model = create_model("akalya2022_acrnn", num_classes=4, input_shape=(20, 30), **small("akalya2022_acrnn"))
    assert model(torch.randn(2, 20, 30)).shape == (2, 4)
    with pytest.raises(ValueError, match="input_shape"):
        create_model("akalya2022_acrnn", num_classes=4, input_shape=(40,))
    with pytest.raises(ValueError, match="too small"):
        create_model("akalya2022_acrnn", num_classes=4, input_shape=(3, 40, 1))
    with pytest.raises(ValueError, match="rnn"):
        create_model("akalya2022_acrnn", num_classes=4, input_shape=PAPER_SHAPE, rnn="gru")
    assert model_spec("akalya2022_acrnn").inputs == ("time_frequency",)
