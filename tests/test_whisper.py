"""The whisper frontend: log-mel and encoder parity with transformers and CTranslate2, every weight format on a tiny
random model built here, truncation, long input, errors, the feature cache; real weights in slow tests."""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from serkit.errors import ConfigError
from serkit.features import (
    FeatureCache,
    WhisperConfig,
    WhisperFrontend,
    create_frontend,
    load_whisper_encoder_weights,
    parse_frontend_config,
)
from serkit.features.whisper import CHUNK_SAMPLES, WhisperEncoder, whisper_log_mel
from serkit.features.whisper_weights import KNOWN_WEIGHTS, read_ctranslate2_bin

transformers = pytest.importorskip("transformers")
ctranslate2 = pytest.importorskip("ctranslate2")

SR = 16000
TINY_POSITIONS = 100  # 2 s of audio per chunk: keeps the tiny model's reference runs fast
# float32 through two implementations of the same arithmetic
STATE_ATOL = 2e-4


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic tone with vibrato and noise: energy in the speech band, not silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2 + 0.01 * rng.standard_normal(len(t))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A random 2-block Whisper saved as transformers, CTranslate2 (converted by ctranslate2) and OpenAI .pt."""
    cfg = transformers.WhisperConfig(
        vocab_size=100, num_mel_bins=80, encoder_layers=2, encoder_attention_heads=4, decoder_layers=1,
        decoder_attention_heads=4, d_model=64, encoder_ffn_dim=256, decoder_ffn_dim=256,
        max_source_positions=TINY_POSITIONS, max_target_positions=32, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1)
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # random, non-trivial layer norms and biases, so that a wrong mapping shows
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    root = tmp_path_factory.mktemp("tiny_whisper")
    model.save_pretrained(root / "hf")
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(root / "hf")).convert(str(root / "ct2"), force=True)
    # OpenAI's checkpoint layout: dims + model_state_dict with encoder.blocks.N.attn.query ... names
    rename = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
              "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
              "final_layer_norm": "mlp_ln"}
    state = {}
    for name, value in model.model.encoder.state_dict().items():
        if name.startswith("layers."):
            _, layer, rest = name.split(".", 2)
            module, leaf = rest.rsplit(".", 1)
            name = f"blocks.{layer}.{rename[module]}.{leaf}"
        elif name == "embed_positions.weight":
            name = "positional_embedding"
        elif name.startswith("layer_norm."):
            name = "ln_post." + name.split(".", 1)[1]
        state["encoder." + name] = value.clone()
    state["decoder.token_embedding.weight"] = torch.zeros(100, 64)  # decoder tensors are ignored
    dims = {"n_mels": 80, "n_audio_ctx": TINY_POSITIONS, "n_audio_state": 64, "n_audio_head": 4, "n_audio_layer": 2,
            "n_vocab": 100, "n_text_ctx": 32, "n_text_state": 64, "n_text_head": 4, "n_text_layer": 1}
    torch.save({"dims": dims, "model_state_dict": state}, root / "tiny.pt")
    return {"hf": root / "hf", "ct2": root / "ct2", "pt": root / "tiny.pt", "model": model}


def _hf_hidden_states(model, mel: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model.model.encoder(mel, output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states]


# ------------------------------------------------------------------------------------------------------ log-mel


def test_log_mel_matches_transformers_feature_extractor():
    y = _speechlike(2.3)
    ref = transformers.WhisperFeatureExtractor(feature_size=80)(y, sampling_rate=SR, return_tensors="np").input_features
    padded = np.zeros(CHUNK_SAMPLES, np.float32)
    padded[: len(y)] = y
    ours = whisper_log_mel(padded[None]).numpy()
    assert ours.shape == ref.shape == (1, 80, 3000)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_unpadded_log_mel_equals_padded_except_the_last_frame():
    y = _speechlike(1.37, seed=3)
    padded = np.zeros(CHUNK_SAMPLES, np.float32)
    padded[: len(y)] = y
    full = whisper_log_mel(padded).numpy()
    own = whisper_log_mel(y).numpy()
    n = len(y) // 160
    assert own.shape == (80, n)
    # reflect (unpadded) against zeros (padded) beyond the clip's end reach only the last frame's window
    np.testing.assert_allclose(own[:, : n - 1], full[:, : n - 1], atol=1e-5)


# --------------------------------------------------------------------------------------------- weight formats


@pytest.mark.parametrize("fmt", ["hf", "ct2", "pt"])
def test_every_weight_format_gives_transformers_hidden_states(tiny_models, fmt):
    weights = load_whisper_encoder_weights(tiny_models[fmt])
    assert weights.dims.n_layers == 2 and weights.dims.d_model == 64 and weights.dims.n_heads == 4
    encoder = WhisperEncoder.from_weights(weights)
    mel = whisper_log_mel(_speechlike(2 * TINY_POSITIONS / 100))[None]  # exactly the 2 x positions frames HF needs
    ref = _hf_hidden_states(tiny_models["model"], mel)
    with torch.no_grad():
        ours = encoder(mel, [0, 1, 2])
    for layer in (0, 1, 2):
        np.testing.assert_allclose(ours[layer].numpy(), ref[layer], atol=STATE_ATOL, err_msg=f"{fmt} layer {layer}")


def test_last_layer_matches_ctranslate2_encode(tiny_models):
    encoder = WhisperEncoder.from_weights(load_whisper_encoder_weights(tiny_models["ct2"]))
    mel = whisper_log_mel(_speechlike(2.0, seed=1))[None]
    ct2 = ctranslate2.models.Whisper(str(tiny_models["ct2"]), device="cpu", compute_type="float32")
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True))
    with torch.no_grad():
        ours = encoder(mel, [2])[2].numpy()
    np.testing.assert_allclose(ours, ref, atol=STATE_ATOL)


def test_truncated_encoder_holds_and_runs_only_the_blocks_used(tiny_models):
    weights = load_whisper_encoder_weights(tiny_models["ct2"], max_layer=1)
    assert weights.loaded_layers == 1 and weights.dims.n_layers == 2
    assert not any(k.startswith("blocks.1.") for k in weights.state)
    encoder = WhisperEncoder.from_weights(weights)
    assert len(encoder.blocks) == 1
    mel = whisper_log_mel(_speechlike(2.0))[None]
    with torch.no_grad():
        ours = encoder(mel, [1])[1].numpy()
    np.testing.assert_allclose(ours, _hf_hidden_states(tiny_models["model"], mel)[1], atol=STATE_ATOL)
    with pytest.raises(ConfigError, match="stops after 1"):
        encoder(mel, [2])



def test_padded_batch_through_blocks_gives_each_clip_its_own_states(tiny_models):
    # Fine-tuning runs the top blocks on padded batches of clips of unequal length: with the valid-frame mask the
    # audio frames must get exactly the states the clip gets alone; without it the padding leaks into them.
    encoder = WhisperEncoder.from_weights(load_whisper_encoder_weights(tiny_models["ct2"]))
    clips = [encoder(whisper_log_mel(_speechlike(s, seed))[None], [0])[0][0] for seed, s in enumerate((0.6, 1.3))]
    x = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    valid = torch.arange(x.shape[1])[None, :] < torch.tensor([len(c) for c in clips])[:, None]
    with torch.no_grad():
        alone = []
        for c in clips:
            y = c[None]
            for block in encoder.blocks:
                y = block(y)
            alone.append(y[0])
        batched, unmasked = x, x
        for block in encoder.blocks:
            batched, unmasked = block(batched, valid), block(unmasked)
    for i, a in enumerate(alone):
        np.testing.assert_allclose(batched[i, : len(a)].numpy(), a.numpy(), atol=1e-5)
    assert not np.allclose(unmasked[0, : len(alone[0])].numpy(), alone[0].numpy(), atol=1e-3)

def test_hub_id_is_read_through_huggingface_hub(tiny_models, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    asked = {}

    def fake_snapshot(repo_id, allow_patterns=None):  # no network in tests: the hub's cache is a local folder
        asked["repo"] = repo_id
        return str(tiny_models["hf"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    weights = load_whisper_encoder_weights("someone/whisper-tiny-random")
    assert asked["repo"] == "someone/whisper-tiny-random" and weights.dims.n_layers == 2


# --------------------------------------------------------------------------------------------------- frontend


def test_frontend_pools_layers_and_encodes_long_input_in_chunks(tiny_models):
    cfg = WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1, 2], pooling="mean_std", combine="stack")
    fe = WhisperFrontend(config=cfg)
    y = _speechlike(1.5)
    out = fe(torch.from_numpy(y))
    assert out.shape == fe.output_shape() == (2, 128)
    with torch.no_grad():
        frames = fe.frames(torch.from_numpy(y))
    assert frames[2].shape == (1, WhisperFrontend.num_frames(len(y)), 64)
    np.testing.assert_allclose(out[1, :64].numpy(), frames[2][0].mean(0).numpy(), atol=1e-6)
    concat = WhisperFrontend(config=cfg.model_copy(update={"combine": "concat", "pooling": "mean"}))
    assert concat(torch.from_numpy(y)).shape == (128,)


def test_loud_frames_are_the_frames_within_loud_db_of_the_loudest_whatever_the_gain(tiny_models):
    fe = WhisperFrontend(config=WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1], loud_db=15))
    frame = 320  # samples per encoder frame
    y = _speechlike(1.0)
    y[20 * frame:40 * frame] *= 0.01  # frames 20-39 are 40 dB down
    y[40 * frame:50 * frame] *= 0.3  # frames 40-49 about 10 dB down
    n = WhisperFrontend.num_frames(len(y))
    for gain in (1.0, 0.001):
        mask = fe.loud_frames(torch.from_numpy(gain * y)[None], n)[0].numpy()
        assert mask.shape == (n,) and mask[:20].all() and not mask[20:40].any() and mask[40:50].all()
    wide = WhisperFrontend(config=fe.config.model_copy(update={"loud_db": 60.0}))
    assert wide.loud_frames(torch.from_numpy(y)[None], n).eq(1).all()
    silent = fe.loud_frames(torch.zeros(1, len(y)), n)  # nothing louder than anything: every frame counts
    assert silent.eq(1).all()


def test_loud_db_appends_the_loud_frames_mean_to_each_layer(tiny_models):
    cfg = WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1, 2], loud_db=15)
    fe = WhisperFrontend(config=cfg)
    y = _speechlike(1.2)
    y[: 10 * 320] *= 0.001  # a quiet lead-in the loud mean leaves out
    x = torch.from_numpy(y)
    with torch.no_grad():
        out = fe(x).numpy()
        frames = fe.frames(x)
    mask = fe.loud_frames(x[None], frames[1].shape[1])[0].numpy().astype(bool)
    assert out.shape == fe.output_shape() == (256,) and fe.feature_dim == 128
    assert 0 < mask.sum() < len(mask) and not mask[:10].any()
    for k, layer in enumerate((1, 2)):
        h = frames[layer][0].numpy()
        np.testing.assert_allclose(out[128 * k:128 * k + 64], h.mean(0), atol=1e-6)
        np.testing.assert_allclose(out[128 * k + 64:128 * (k + 1)], h[mask].mean(0), atol=1e-6)
    other = torch.from_numpy(_speechlike(1.2, seed=1))
    with torch.no_grad():
        batch = fe(torch.stack([x, other])).numpy()  # a batch pools each item on its own loud frames
        np.testing.assert_allclose(batch[0], out, atol=1e-5)
        np.testing.assert_allclose(batch[1], fe(other).numpy(), atol=1e-5)
    stacked = WhisperFrontend(config=cfg.model_copy(update={"combine": "stack", "pooling": "mean_std"}))
    assert stacked(x).shape == stacked.output_shape() == (2, 192)


def test_loud_db_joins_the_config_dump_only_when_set():
    # recipes and model files written before the option keep their feature-cache keys
    assert "loud_db" not in WhisperConfig().model_dump(mode="json")
    assert WhisperConfig(loud_db=15).model_dump(mode="json")["loud_db"] == 15.0
    assert parse_frontend_config({"name": "whisper", "loud_db": 15}).loud_db == 15.0
    with pytest.raises(ConfigError, match="loud_db"):
        parse_frontend_config({"name": "whisper", "pooling": "none", "loud_db": 15})
    with pytest.raises(ConfigError, match="loud_db"):
        parse_frontend_config({"name": "whisper", "loud_db": -3})


def test_int8_encoder_quantises_the_linear_layers_and_stays_close_to_float(tiny_models):
    cfg = WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1, 2], loud_db=15)
    full, quant = WhisperFrontend(config=cfg), WhisperFrontend(config=cfg.model_copy(update={"precision": "int8"}))
    modules = list(quant.encoder.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)  # every nn.Linear replaced by a quantised one
    assert sum(type(m).__module__.startswith("torch.ao.nn.quantized") and type(m).__name__ == "Linear"
               for m in modules) == sum(type(m) is torch.nn.Linear for m in full.encoder.modules())
    assert isinstance(quant.encoder.conv1, torch.nn.Conv1d)  # the convolutions stay float
    ys = [torch.from_numpy(_speechlike(1.5, seed=k)) for k in range(4)]
    with torch.no_grad():
        a, b = torch.stack([full(y) for y in ys]), torch.stack([quant(y) for y in ys])
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    assert (cos > 0.99).all() and not torch.equal(a, b)
    # the precision joins the config dump (so the cache keys the int8 features apart) only when int8
    assert "precision" not in cfg.model_dump() and "precision" not in cfg.model_copy(
        update={"precision": "float32"}).model_dump()
    assert quant.config.model_dump()["precision"] == "int8"


def test_audio_longer_than_a_chunk_is_encoded_chunk_by_chunk(tiny_models):
    fe = WhisperFrontend(config=WhisperConfig(weights=str(tiny_models["hf"]), layers=[2]))
    assert fe.chunk_samples == 2 * SR  # the tiny model's 100 positions cover 2 s (OpenAI's 1500: 30 s)
    y = torch.from_numpy(_speechlike(5.0))
    with torch.no_grad():
        frames = fe.frames(y)[2]
        parts = [fe.frames(y[s:s + 2 * SR])[2] for s in (0, 2 * SR, 4 * SR)]
    assert frames.shape[1] == sum(p.shape[1] for p in parts) == 100 + 100 + 50
    np.testing.assert_allclose(frames.numpy(), torch.cat(parts, 1).numpy(), atol=1e-6)


def test_frontend_config_is_a_recipe_field_and_checks_its_values():
    cfg = parse_frontend_config({"name": "whisper", "layers": [4, 2]})
    assert isinstance(cfg, WhisperConfig) and cfg.layers == [2, 4] and cfg.max_layer == 4
    assert cfg.expected_sha256() == KNOWN_WEIGHTS["whisper-base"].sha256
    with pytest.raises(ConfigError, match="layers"):
        parse_frontend_config({"name": "whisper", "layers": [-1]})
    with pytest.raises(ConfigError, match="n_mfcc"):  # a spectral field on the whisper config
        parse_frontend_config({"name": "whisper", "n_mfcc": 40})
    with pytest.raises(ConfigError, match="16000"):
        create_frontend({"name": "whisper"}, 8000)


def test_feature_cache_keys_on_the_weights_sha256(tiny_models, tmp_path):
    import soundfile as sf

    from serkit.audio import AudioConfig
    from serkit.features.extractor import FeatureExtractor

    paths = []
    for i, seconds in enumerate((0.7, 1.3, 2.9)):  # clips of different lengths, no duration set
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], _speechlike(seconds, seed=i), SR)
    cache = FeatureCache(tmp_path / "cache")
    cfg = WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1])
    ex = FeatureExtractor(AudioConfig(sample_rate=SR), cfg, cache=cache)
    first = ex.from_paths(paths)
    assert first.X.shape == (3, 64) and len(cache) == 3
    again = FeatureExtractor(AudioConfig(sample_rate=SR), cfg, cache=cache).from_paths(paths)
    np.testing.assert_array_equal(first.X, again.X)
    assert len(cache) == 3  # hits
    other = FeatureExtractor(AudioConfig(sample_rate=SR), cfg.model_copy(update={"weights": str(tiny_models["hf"])}),
                             cache=cache)
    assert other.cache_config["weights_sha256"] != ex.cache_config["weights_sha256"]
    other.from_paths(paths)
    assert len(cache) == 6  # other weights (same architecture) are other features


# ------------------------------------------------------------------------------------------------------ errors


def test_wrong_sha256_names_the_file(tiny_models):
    with pytest.raises(ConfigError, match=r"model\.bin: sha256 .* does not match"):
        load_whisper_encoder_weights(tiny_models["ct2"], expected_sha256="0" * 64)


def test_truncated_ctranslate2_file_is_a_clear_error(tiny_models, tmp_path):
    data = (tiny_models["ct2"] / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="truncated CTranslate2 model"):
        load_whisper_encoder_weights(tmp_path)


def test_missing_part_names_the_part(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="part2.*not found"):
        read_ctranslate2_bin([tiny_models["ct2"] / "model.bin", tmp_path / "model.bin.part2"])


def test_split_parts_read_as_one_stream_with_one_checksum(tiny_models, tmp_path):
    data = (tiny_models["ct2"] / "model.bin").read_bytes()
    cut = len(data) // 3
    (tmp_path / "p1").write_bytes(data[:cut])
    (tmp_path / "p2").write_bytes(data[cut:])
    joined, info = read_ctranslate2_bin([tmp_path / "p1", tmp_path / "p2"])
    whole, whole_info = read_ctranslate2_bin(tiny_models["ct2"] / "model.bin")
    assert info["sha256"] == whole_info["sha256"] == hashlib.sha256(data).hexdigest()
    assert joined.keys() == whole.keys()
    assert all(np.array_equal(joined[k], whole[k]) for k in whole)


def test_tensor_of_wrong_shape_is_named(tiny_models, tmp_path):
    payload = torch.load(tiny_models["pt"], weights_only=True)
    payload["model_state_dict"]["encoder.blocks.1.mlp.0.weight"] = torch.zeros(10, 64)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=r"blocks\.1\.mlp\.0\.weight has shape \(10, 64\), expected \(256, 64\)"):
        load_whisper_encoder_weights(tmp_path / "bad.pt")


def test_missing_tensor_and_unknown_sources_are_named(tiny_models, tmp_path):
    payload = torch.load(tiny_models["pt"], weights_only=True)
    del payload["model_state_dict"]["encoder.ln_post.weight"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=r"tensor ln_post\.weight missing"):
        load_whisper_encoder_weights(tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="not a Whisper model folder"):
        load_whisper_encoder_weights(tmp_path)
    with pytest.raises(ConfigError, match="not a known name"):
        load_whisper_encoder_weights("no-such-weights")


def test_a_non_whisper_model_bin_is_refused(tmp_path):
    def s(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    blob = struct.pack("<I", 6) + s("TransformerSpec") + struct.pack("<II", 1, 0)
    (tmp_path / "model.bin").write_bytes(blob)
    with pytest.raises(ConfigError, match="TransformerSpec model, not Whisper"):
        load_whisper_encoder_weights(tmp_path)


# ------------------------------------------------------------------------------------------------ real weights


def _installed(name: str) -> bool:
    try:
        load_whisper_encoder_weights(name, max_layer=0)
    except ConfigError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
def test_real_weights_match_ctranslate2_on_padded_30s_input(name, tmp_path):
    if not _installed(name):
        pytest.skip(f"{name}: packages {KNOWN_WEIGHTS[name].packages} not installed")
    weights = load_whisper_encoder_weights(name)
    assert weights.sha256 == KNOWN_WEIGHTS[name].sha256
    encoder = WhisperEncoder.from_weights(weights)
    # ctranslate2 reads a folder: join the packages' parts into one (config.json sits beside the last part)
    from serkit.features.whisper_weights import _package_parts

    parts = _package_parts(KNOWN_WEIGHTS[name])
    with open(tmp_path / "model.bin", "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                shutil.copyfileobj(fh, out)
    for extra in ("config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json"):
        if (parts[-1].parent / extra).exists():
            shutil.copy(parts[-1].parent / extra, tmp_path / extra)
    y = np.zeros(CHUNK_SAMPLES, np.float32)
    y[: 3 * SR] = _speechlike(3.0)
    mel = whisper_log_mel(y)[None]
    ct2 = ctranslate2.models.Whisper(str(tmp_path), device="cpu", compute_type="float32")
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True))
    with torch.no_grad():
        ours = encoder(mel, [weights.dims.n_layers])[weights.dims.n_layers].numpy()
    # float16 weights computed in float32 by two libraries over 1500 frames: agreement to ~1e-4 of the states'
    # range (measured: 5.6e-5 absolute on values up to 12.7 for tiny.en)
    np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max())


@pytest.mark.slow
def test_base_features_of_a_clip_are_deterministic_and_finite():
    if not _installed("whisper-base"):
        pytest.skip("whisper-base packages not installed")
    fe = WhisperFrontend(config=WhisperConfig(weights="whisper-base", layers=[3, 4]))
    y = torch.from_numpy(_speechlike(2.0))
    with torch.no_grad():
        a, b = fe(y), fe(y)
    assert a.shape == (1024,) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------- frame sequences, heads


def test_frame_sequence_output_pads_after_the_clip_and_marks_its_frames(tiny_models):
    cfg = WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1, 2], pooling="none", max_seconds=1.0)
    fe = WhisperFrontend(config=cfg)
    assert cfg.output_kind() == "frame_sequence" and cfg.max_frames == 50
    short, long = torch.from_numpy(_speechlike(0.6)), torch.from_numpy(_speechlike(1.8))
    with torch.no_grad():
        seq = fe(short)
        frames = fe.frames(short)
    assert seq.shape == fe.output_shape() == (129, 50)
    n = WhisperFrontend.num_frames(len(short))  # 30 frames of the clip, then padding
    assert seq[-1, :n].eq(1).all() and seq[-1, n:].eq(0).all() and seq[:-1, n:].eq(0).all()
    np.testing.assert_allclose(seq[:64, :n].T.numpy(), frames[1][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(seq[64:128, :n].T.numpy(), frames[2][0].numpy(), atol=1e-6)
    with torch.no_grad():
        assert fe(long)[-1].eq(1).all()  # a longer clip is cut at max_seconds
    with pytest.raises(ConfigError, match="combine"):
        parse_frontend_config({"name": "whisper", "pooling": "none", "combine": "stack"})


def test_sequence_recipes_must_not_normalise_padded_frames(tmp_path):
    from serkit.recipe import Recipe

    base = {"name": "r", "corpus": {"name": "emodb", "root": str(tmp_path)}, "audio": {"sample_rate": 16000},
            "frontend": {"name": "whisper", "pooling": "none"}, "model": {"name": "attentive_probe"}}
    with pytest.raises(ConfigError, match="normalization: frame sequences"):
        Recipe.from_dict(base)
    Recipe.from_dict({**base, "normalization": "none"})
    with pytest.raises(ConfigError, match="pools itself"):
        Recipe.from_dict({**base, "frontend": {"name": "whisper"}, "pooling": "mean"})


def test_attentive_probe_ignores_padding_and_fits_a_tiny_batch(one_torch_thread):
    from conftest import fit_tiny_batch
    from serkit.models import create_model

    torch.manual_seed(0)
    model = create_model("attentive_probe", num_classes=3, input_shape=(17, 12), hidden=32, attention=16).eval()
    x = torch.randn(6, 17, 12)
    x[:, -1] = 0
    x[:, -1, :7] = 1  # 7 frames of clip, 5 of padding
    garbage = x.clone()
    garbage[:, :-1, 7:] = 100 * torch.randn(6, 16, 5)  # whatever sits in the padding
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(garbage))
        model(x)
    assert model.last_weights[:, 7:].eq(0).all()
    torch.testing.assert_close(model.last_weights.sum(1), torch.ones(6))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x[:, 0, :7] += 3 * y[:, None]  # a class cue in the clip's frames
    fit_tiny_batch(model, x, y, steps=150)
    model.eval()
    with torch.no_grad():
        assert model(x).argmax(1).eq(y).all()


def test_probe_learns_layer_weights_and_fits_a_tiny_batch(one_torch_thread):
    from conftest import fit_tiny_batch
    from serkit.models import create_model

    torch.manual_seed(0)
    model = create_model("probe", num_classes=2, input_shape=(4, 8), hidden=(16,), dropout=0.0)
    torch.testing.assert_close(model.layer_weights(), torch.full((4,), 0.25))
    x = torch.randn(8, 4, 8)
    y = torch.tensor([0, 1] * 4)
    x[:, 2, 0] += 4 * y  # only layer 2 tells the classes apart
    fit_tiny_batch(model, x, y, steps=200)
    model.eval()
    with torch.no_grad():
        assert model(x).argmax(1).eq(y).all()
    assert model.layer_weights().argmax() == 2
    assert create_model("probe", num_classes=2, input_shape=(8,), hidden=()).layer_weights() is None


def test_logreg_chooses_c_on_validation_and_refits():
    from serkit.models import create_model

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), np.repeat([0, 1, 2], 20)
    X[:, 0] += 2 * y
    Xv, yv = rng.standard_normal((30, 5)), np.repeat([0, 1, 2], 10)
    Xv[:, 0] += 2 * yv
    model = create_model("logreg", num_classes=4, C=[0.001, 1.0]).fit(X, y, Xv, yv)
    info = model.fit_info()
    assert info["refit_on_val"] and [s["C"] for s in model.selection] == [0.001, 1.0]
    assert info["chosen_C"] == max(model.selection, key=lambda s: s["val_ua"])["C"]
    proba = model.predict_proba(Xv)
    assert proba.shape == (30, 4) and np.allclose(proba[:, 3], 0) and np.allclose(proba.sum(1), 1)
    kept = create_model("logreg", num_classes=4, C=[0.001, 1.0], refit=False).fit(X, y, Xv, yv)
    assert not kept.fit_info()["refit_on_val"]
    np.testing.assert_allclose(kept.predict_proba(Xv), kept.validation_proba)  # validation never trained on
    assert not np.allclose(model.predict_proba(Xv), kept.predict_proba(Xv))


def test_extraction_is_cached_chunk_by_chunk_so_an_interrupted_run_resumes(tiny_models, tmp_path, monkeypatch):
    import soundfile as sf

    import serkit.features.extractor as extractor_module
    from serkit.audio import AudioConfig
    from serkit.features.extractor import FeatureExtractor

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], _speechlike(0.5 + 0.1 * i, seed=i), SR)
    monkeypatch.setattr(extractor_module, "EXTRACT_CHUNK_FILES", 2)
    cache = FeatureCache(tmp_path / "cache")
    ex = FeatureExtractor(AudioConfig(sample_rate=SR), WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1]),
                          cache=cache)
    calls = []
    real = ex.features_per_signal

    def interrupted(signals):  # an encoder takes one clip at a time
        calls.append(len(signals))
        if len(calls) == 5:
            raise KeyboardInterrupt  # the third chunk never finishes
        return real(signals)

    monkeypatch.setattr(ex, "features_per_signal", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ex.from_paths(paths)
    assert calls == [1] * 5 and len(cache) == 4  # the first two chunks were kept
    calls.clear()
    again = ex.from_paths(paths, progress=True)
    assert calls == [1] and again.X.shape == (5, 64)  # only the missing file is encoded


def test_a_clip_the_encoder_refuses_fails_alone_and_is_named(tiny_models, tmp_path):
    import soundfile as sf

    from serkit.audio import AudioConfig
    from serkit.features.extractor import FeatureExtractor

    good, tiny = tmp_path / "good.wav", tmp_path / "tiny.wav"
    sf.write(good, _speechlike(0.8), SR)
    sf.write(tiny, _speechlike(0.008), SR)  # 128 samples: too short for one log-mel frame
    ex = FeatureExtractor(AudioConfig(sample_rate=SR), WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1]))
    feats = ex.from_paths([good, tiny])
    assert feats.rows.tolist() == [0] and feats.X.shape == (1, 64)
    assert feats.failures == [(str(tiny), "too short for Whisper's log-mel: 128 samples, needs at least 201")]


def test_augmented_copies_features_are_cached_by_their_samples(tiny_models, tmp_path, monkeypatch):
    from serkit.audio import AudioConfig
    from serkit.features.extractor import FeatureExtractor

    cache = FeatureCache(tmp_path / "cache")
    ex = FeatureExtractor(AudioConfig(sample_rate=SR), WhisperConfig(weights=str(tiny_models["ct2"]), layers=[1]),
                          cache=cache)
    copies = [_speechlike(0.6 + 0.2 * i, seed=i) for i in range(3)]
    first = ex.from_signals_cached(copies)
    np.testing.assert_allclose(first, ex.from_signals(copies), atol=1e-6)  # the same features, stacked
    assert len(cache) == 3

    def no_encoding(signals):
        raise AssertionError(f"encoded {len(signals)} signal(s) again")

    monkeypatch.setattr(ex, "from_signals", no_encoding)
    np.testing.assert_array_equal(ex.from_signals_cached(copies), first)  # every copy read back
    changed = [copies[0], copies[1] * 0.5, copies[2]]  # another copy (other samples) is another entry
    monkeypatch.undo()
    ex.from_signals_cached(changed)
    assert len(cache) == 4
