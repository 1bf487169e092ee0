"""ha2024's streams, non-local fusion and Table 5 variants; initialisation from a checkpoint."""

from __future__ import annotations

import pytest
import torch

from conftest import fit_tiny_batch
from serkit.errors import ConfigError
from serkit.models import create_model, model_spec
from serkit.models.bundle import ModelBundle
from serkit.models.ha2024 import NonLocalBlock
from serkit.models.init import init_from_checkpoint

VARIANTS = ["ha2024_type1", "ha2024_type2a", "ha2024_type2b", "ha2024_type2b_8k", "ha2024_type3", "ha2024_type4",
            "ha2024_type4_8k", "ha2024_proposed", "ha2024_proposed_8k"]

# Parameter counts for 7 classes (EmoDB); no layer depends on the input length, so they hold for every size.
PARAMS = {"ha2024_type1": 877_191, "ha2024_type2a": 220_359, "ha2024_type2b": 260_679, "ha2024_type3": 741_703,
          "ha2024_type4": 310_279, "ha2024_proposed": 1_645_831}
PARAMS.update({"ha2024_type2b_8k": PARAMS["ha2024_type2b"], "ha2024_type4_8k": PARAMS["ha2024_type4"],
               "ha2024_proposed_8k": PARAMS["ha2024_proposed"]})

# The paper's inputs: librosa-convention MFCC/STFT (n_fft 2048, hop 512, centred): 1 + L // 512 frames.
PAPER_SHAPES = {
    "5s_16k": {"raw": (1, 80_000), "mfcc": (128, 157), "stft": (128, 157)},
    "8s_16k": {"raw": (1, 128_000), "mfcc": (128, 251), "stft": (128, 251)},
    "5s_8k": {"raw": (1, 40_000), "mfcc": (128, 79), "stft": (128, 79)},
}
SMALL = {"raw": (1, 2048), "mfcc": (64, 64), "stft": (64, 64)}  # 2-D maps of 2x2 cells: type 4 gets 4 tokens


def build(name: str, shapes: dict, num_classes: int = 7, **options):
    model = create_model(name, num_classes=num_classes, input_shape=shapes, **options)
    return model, [torch.randn(2, *shapes[s]) for s in model.input_streams]


def test_every_table5_variant_is_registered_with_its_frontends():
    for name in VARIANTS:
        spec = model_spec(name)
        assert spec.paper == "ha2024"
        assert set(spec.defaults["streams"]) <= {"raw", "mfcc", "stft"}
    assert model_spec("ha2024_proposed").defaults["streams"] == ("raw", "mfcc", "stft")
    assert model_spec("ha2024_type1").defaults["streams"] == ("raw", "mfcc")


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count(name):
    model, _ = build(name, SMALL)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.slow
@pytest.mark.parametrize("size", sorted(PAPER_SHAPES))
def test_output_shapes_for_the_papers_inputs(size):
    shapes = PAPER_SHAPES[size]
    torch.manual_seed(0)
    for name in VARIANTS:
        model = create_model(name, num_classes=7, input_shape=shapes).eval()
        with torch.no_grad():
            out = model(*[torch.randn(1, *shapes[s]) for s in model.input_streams])
        assert out.shape == (1, 7), (name, size)


def test_stream_sequence_lengths_follow_tables_3_and_4():
    model = create_model("ha2024_proposed", num_classes=7, input_shape=PAPER_SHAPES["5s_16k"]).eval()
    with torch.no_grad():
        raw_tokens = model.streams["raw"].tokens(torch.randn(1, 1, 80_000))
        mfcc_map = model.streams["mfcc"].cnn(torch.randn(1, 1, 128, 157))
    assert raw_tokens.shape == (1, 312, 128)  # 80000 / 4^4 steps, LSTM 128
    assert mfcc_map.shape == (1, 128, 4, 5)  # pools 2, 4, 4 (ceil); then the global pool to 1x1


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model, xs = build(name, SMALL)
    model.train()
    torch.nn.functional.cross_entropy(model(*xs), torch.tensor([0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # Table 4's 2-D LSTM runs over a sequence of one step (the map pooled to 1x1), where the recurrent
    # weights meet only the zero initial state: they are in the paper's model but cannot learn.
    one_step = {f"streams.{s}.lstm.weight_hh_l0" for s in ("mfcc", "stft") if model_spec(name).defaults.get("lstm_2d", 256)}
    assert set(missing) <= one_step, missing
    assert not [n for n in missing if "raw" in n]


@pytest.mark.parametrize("name", ["ha2024_proposed", "ha2024_type1", "ha2024_type2a", "ha2024_type2b",
                                  "ha2024_type3", "ha2024_type4"])
def test_overfits_a_tiny_batch(name):
    torch.manual_seed(0)
    # Narrow layers keep this fast; the architecture (streams, fusion) is the variant's own.
    shapes = {"raw": (1, 1024), "mfcc": (32, 32), "stft": (32, 32)}
    model = create_model(name, num_classes=4, input_shape=shapes, dropout=0.0, channels=(8, 8, 16, 16),
                         lstm_1d=16, width=16, **({"lstm_2d": 16} if model_spec(name).defaults.get("lstm_2d", 1) else {}))
    xs = [torch.randn(8, *shapes[s]) for s in model.input_streams]
    y = torch.arange(8) % 4
    fit_tiny_batch(model, tuple(xs), y, steps=25)
    model.train()  # BatchNorm with batch statistics: what the steps fitted
    with torch.no_grad():
        assert (model(*xs).argmax(1) == y).all()


@pytest.mark.parametrize("name,shapes,tokens", [("ha2024_proposed", SMALL, 3),
                                                ("ha2024_type4", {"mfcc": (128, 157)}, 4 * 5), ("ha2024_type4", SMALL, 4)])
def test_attention_weights_sum_to_one(name, shapes, tokens):
    model, xs = build(name, shapes)
    model.eval()
    with torch.no_grad():
        model(*xs)
    att = model.last_attention
    assert att.shape == (2, tokens, tokens)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, tokens))
    assert (att >= 0).all()


def test_models_without_attention_report_none():
    model, xs = build("ha2024_type3", SMALL)
    model(*xs)
    assert model.last_attention is None


def test_non_local_block_is_residual_and_permutation_equivariant():
    torch.manual_seed(0)
    block = NonLocalBlock(8)
    x = torch.randn(2, 5, 8)
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(block(x)[:, perm], block(x[:, perm]))
    torch.nn.init.zeros_(block.w_z.weight)
    torch.nn.init.zeros_(block.w_z.bias)
    torch.testing.assert_close(block(x), x)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="no shape for stream"):
        create_model("ha2024_proposed", num_classes=7, input_shape={"raw": (1, 2048), "mfcc": (24, 32)})
    with pytest.raises(ValueError, match="input_shape.raw"):
        create_model("ha2024_type2a", num_classes=7, input_shape={"raw": (2, 2048)})
    with pytest.raises(ValueError, match="fewer than"):
        create_model("ha2024_type2a", num_classes=7, input_shape={"raw": (1, 100)})
    model, xs = build("ha2024_type1", SMALL)
    with pytest.raises(ValueError, match="expected 2 input"):
        model(xs[0])
    # A single-stream model also takes a plain shape (what a single-input pipeline would give it).
    assert create_model("ha2024_type2b", num_classes=3, input_shape=(24, 32))(torch.randn(2, 24, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", ["ha2024_proposed", "ha2024_type4"])
def test_bundle_round_trip_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    model, xs = build(name, SMALL)
    model.eval()
    recipe = {"model": {"name": name, "init_from": None, "init_prefixes": None}}
    ModelBundle(recipe, list("abcdefg"), SMALL, model, None, {}).save(tmp_path / "model.pt")
    loaded = ModelBundle.load(tmp_path / "model.pt")
    assert loaded.input_shape == SMALL
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(*xs), model(*xs), rtol=0, atol=0)


def test_init_from_bundle_whole_model_and_one_stream(tmp_path):
    torch.manual_seed(0)
    source, xs = build("ha2024_proposed", SMALL)
    source.eval()
    ModelBundle({"model": {"name": "ha2024_proposed"}}, list("abcdefg"), SMALL, source, None, {}).save(
        tmp_path / "model.pt")
    torch.manual_seed(1)
    target, _ = build("ha2024_proposed", SMALL)
    info = init_from_checkpoint(target, tmp_path / "model.pt")
    assert len(info["loaded"]) == len(target.state_dict())
    target.eval()
    with torch.no_grad():
        torch.testing.assert_close(target(*xs), source(*xs))

    # Another corpus, other classes: take only the MFCC stream (ha2024's pre-trained 2-D stream).
    torch.manual_seed(2)
    other, _ = build("ha2024_proposed", SMALL, num_classes=4)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    init_from_checkpoint(other, tmp_path / "model.pt", prefixes=["streams.mfcc."])
    for key, value in other.state_dict().items():
        if key.startswith("streams.mfcc."):
            torch.testing.assert_close(value, source.state_dict()[key])
        else:
            torch.testing.assert_close(value, before[key])


def test_init_from_plain_state_dict_and_errors(tmp_path):
    source, _ = build("ha2024_type2b", SMALL)
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    target, _ = build("ha2024_type2b", SMALL)
    init_from_checkpoint(target, tmp_path / "plain.pt")
    torch.testing.assert_close(target.state_dict()["classifier.weight"], source.state_dict()["classifier.weight"])

    other_classes, _ = build("ha2024_type2b", SMALL, num_classes=4)
    with pytest.raises(ConfigError, match=r"mis-shaped: classifier.weight \(checkpoint \(7, 128\), model \(4, 128\)\)"):
        init_from_checkpoint(other_classes, tmp_path / "plain.pt")
    three, _ = build("ha2024_proposed", SMALL)
    with pytest.raises(ConfigError, match="missing: streams.raw.cnn.0.weight"):
        init_from_checkpoint(three, tmp_path / "plain.pt")
    with pytest.raises(ConfigError, match="match no parameter"):
        init_from_checkpoint(three, tmp_path / "plain.pt", prefixes=["stream.mfcc."])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pt: not a readable torch file"):
        init_from_checkpoint(three, tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="no such checkpoint"):
        init_from_checkpoint(three, tmp_path / "absent.pt")
