"""Ha, Nguyen, Chan & Chen (2024), "Emotional Inference from Speech Signals Informed by Multiple Stream DNNs
Based Non-Local Attention Mechanism": the 1D CNN-LSTM on raw audio, the 2D CNN(-LSTM) on MFCCs and on the STFT,
the non-local attention fusion of the three streams, and the variants of the paper's Table 5.

One configurable module, :class:`Ha2024Net`; each Table 5 row is a registered name with its own defaults:

==========================  ======================  ==========  ==========================================
name                        streams                 2-D LSTM    fusion
==========================  ======================  ==========  ==========================================
ha2024_type1                raw, mfcc               yes         concatenation (Fig. 7)
ha2024_type2a               raw                     (1-D LSTM)  none: 1D CNN-LSTM alone (Fig. 8a)
ha2024_type2b(_8k)          mfcc                    no          none: modified 2D CNN alone (Fig. 8b)
ha2024_type3                raw, mfcc, stft         no          concatenation (Fig. 9)
ha2024_type4(_8k)           mfcc                    no          non-local attention over the CNN map (Fig. 10)
ha2024_proposed(_8k)        raw, mfcc, stft         yes         non-local attention across streams (Fig. 2)
==========================  ======================  ==========  ==========================================

The ``_8k`` names are the same networks for 8 kHz input (the paper's "reduced from 16k to 8k" rows): the sample
rate is the recipe's ``audio.sample_rate``; the networks adapt to the shorter inputs.

Inputs (the multi-input convention of :mod:`serkit.multi_input`): the model is called ``model(*tensors)`` in the
order of ``streams`` (``model.input_streams``). A stream named ``raw`` (or ``raw_*``) is a waveform (B, 1, L) from
the ``raw`` frontend and goes through the 1-D network; any other stream is a feature map (B, F, T) (``mfcc`` with
128 coefficients, or the 128-band ``stft`` frontend) and goes through the 2-D network.

Choices where the paper is vague (systems.md section 4):

* 1-D stream (Table 3): four blocks Conv1D k3 "same" (64, 64, 128, 128) + BatchNorm + ReLU + MaxPool 4, so 5 s at
  16 kHz gives 80000 / 256 = 312 steps of 128; then an LSTM of 128 units (the text's reduction from 256) and its
  last state.
* 2-D stream (Table 4): four blocks Conv2D 3x3 "same" (64, 64, 128, 128) + BatchNorm + ReLU + MaxPool (2, 4, 4,
  then a global max pool to 1x1, which Table 4's "4*7 -> 1*1" implies); then, with ``lstm_2d``, an LSTM of 256
  units over that single step (Table 4), without it the 128 pooled features ("modified", Type 2b).
* Non-local fusion (Wang et al. 2018, the paper's ref. [14]): each stream's output is projected to ``width``
  features and the streams form a set of tokens x; theta, phi, g are 1x1 (linear) projections to
  ``width // 2``; the affinity softmax(theta phi^T) over the keys (rows sum to one, kept in
  ``last_attention``); z = W_z(affinity g) + x (residual); the tokens are averaged, then dropout and a dense
  layer. Type 4 applies the same block to the positions of the 2-D CNN's last feature map (before the global
  pool), the paper's single-stream attention.
* Dropout before the classifier (``dropout``, 0.3) is not in the paper; the pre-trained 2-D streams start from a
  serkit checkpoint (``model.init_from``) instead of ImageNet weights, which cannot be downloaded here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from serkit.models.registry import register_model

__all__ = ["Conv1dStream", "Conv2dStream", "Ha2024Net", "NonLocalBlock"]


def _is_waveform_stream(name: str) -> bool:
    return name == "raw" or name.startswith("raw_")


class Conv1dStream(nn.Module):
    """The 1-D CNN-LSTM on a raw waveform (B, 1, L) -> (B, lstm_units), or (B, channels[-1]) without the LSTM."""

    def __init__(self, channels: Sequence[int] = (64, 64, 128, 128), pool: int = 4, lstm_units: int | None = 128):
        super().__init__()
        blocks, in_ch = [], 1
        for ch in channels:
            # ReLU after the pool: the same values (ReLU is monotone, so it commutes with max), on 1/pool the samples
            blocks += [nn.Conv1d(in_ch, ch, 3, padding=1), nn.BatchNorm1d(ch), nn.MaxPool1d(pool), nn.ReLU()]
            in_ch = ch
        self.cnn = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(in_ch, lstm_units, batch_first=True) if lstm_units else None
        self.out_features = lstm_units or in_ch
        self.downsample = pool ** len(channels)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The sequence (B, steps, out_features): LSTM outputs, or the CNN's output steps without the LSTM."""
        h = self.cnn(x).transpose(1, 2)  # (B, steps, C)
        return self.lstm(h)[0] if self.lstm is not None else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn(x).transpose(1, 2)
        if self.lstm is None:
            return h.amax(dim=1)
        return self.lstm(h)[1][0][-1]  # the last hidden state


class Conv2dStream(nn.Module):
    """The 2-D CNN(-LSTM) on a feature map (B, F, T) -> (B, lstm_units), or (B, channels[-1]) without the LSTM."""

    def __init__(self, channels: Sequence[int] = (64, 64, 128, 128), pools: Sequence[int] = (2, 4, 4),
                 lstm_units: int | None = 256):
        super().__init__()
        if len(pools) != len(channels) - 1:
            raise ValueError(f"pools: one per block but the last (global), got {len(pools)} for {len(channels)} blocks")
        blocks, in_ch = [], 1
        for i, ch in enumerate(channels):
            blocks += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.BatchNorm2d(ch)]
            if i < len(pools):
                blocks.append(nn.MaxPool2d(pools[i], ceil_mode=True))  # ceil: short maps keep at least one cell
            blocks.append(nn.ReLU())  # after the pool: the same values as before it, on fewer cells
            in_ch = ch
        self.cnn = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(in_ch, lstm_units, batch_first=True) if lstm_units else None
        self.out_features = lstm_units or in_ch
        self.map_features = in_ch

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map's positions as tokens (B, h*w, channels[-1])."""
        return self.cnn(x.unsqueeze(1)).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn(x.unsqueeze(1)).amax(dim=(2, 3))  # global max pool to 1x1: (B, C)
        if self.lstm is None:
            return h
        return self.lstm(h.unsqueeze(1))[1][0][-1]  # a sequence of one step (Table 4)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block over a set of tokens (B, N, width), with a residual connection.

    ``last_attention`` keeps the last affinity (B, N, N); every row sums to one.
    """

    def __init__(self, width: int, inner: int | None = None):
        super().__init__()
        inner = inner or max(1, width // 2)
        self.theta, self.phi, self.g = (nn.Linear(width, inner) for _ in range(3))
        self.w_z = nn.Linear(inner, width)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        affinity = torch.softmax(self.theta(x) @ self.phi(x).transpose(1, 2), dim=-1)
        self.last_attention = affinity.detach()
        return x + self.w_z(affinity @ self.g(x))


class Ha2024Net(nn.Module):
    """ha2024's streams with one of three heads: a single stream, concatenation, or non-local fusion.

    Parameters
    ----------
    num_classes : classes.
    input_shape : one shape per stream ({"raw": (1, 80000), "mfcc": (128, 157), ...}); a tuple for one stream.
    streams : stream names in call order ("raw"/"raw_*" = waveform, any other = 2-D feature map).
    lstm_1d : LSTM units of the 1-D stream (None: no LSTM, the CNN output max-pooled over time).
    lstm_2d : LSTM units of the 2-D streams (None: the "modified" 2-D CNN without LSTM).
    fusion : "concat" (Types 1, 3; also a single stream: Types 2a, 2b) or "nonlocal" (Type 4, proposed).
    attention_tokens : "streams" (one token per stream) or "positions" (every position of every stream's map).
    width : feature width of the non-local tokens.
    dropout : dropout before the classifier.
    channels, pool_1d, pools_2d : the CNN blocks (Tables 3 and 4).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Mapping[str, Sequence[int]] | Sequence[int],
        *,
        streams: Sequence[str] = ("raw", "mfcc", "stft"),
        lstm_1d: int | None = 128,
        lstm_2d: int | None = 256,
        fusion: Literal["concat", "nonlocal"] = "nonlocal",
        attention_tokens: Literal["streams", "positions"] = "streams",
        width: int = 128,
        dropout: float = 0.3,
        channels: Sequence[int] = (64, 64, 128, 128),
        pool_1d: int = 4,
        pools_2d: Sequence[int] = (2, 4, 4),
    ):
        super().__init__()
        streams = tuple(str(s) for s in streams)
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f"streams: give distinct stream names, got {list(streams)}")
        if not isinstance(input_shape, Mapping):
            if len(streams) != 1:
                raise ValueError(f"input_shape: give one shape per stream {list(streams)}, got {tuple(input_shape)}")
            input_shape = {streams[0]: tuple(input_shape)}
        missing = [s for s in streams if s not in input_shape]
        if missing:
            raise ValueError(f"input_shape: no shape for stream(s) {missing} (have {sorted(input_shape)})")
        self.input_streams = streams
        self.fusion, self.attention_tokens = fusion, attention_tokens
        self.streams = nn.ModuleDict()
        for name in streams:
            shape = tuple(int(n) for n in input_shape[name])
            if _is_waveform_stream(name):
                if len(shape) != 2 or shape[0] != 1:
                    raise ValueError(f"input_shape.{name}: a waveform stream is (1, samples), got {shape}")
                net: nn.Module = Conv1dStream(channels, pool_1d, lstm_1d)
                if shape[1] < net.downsample:
                    raise ValueError(f"input_shape.{name}: {shape[1]} samples, fewer than the 1-D CNN's "
                                     f"downsampling ({net.downsample})")
            else:
                if len(shape) != 2:
                    raise ValueError(f"input_shape.{name}: a feature-map stream is (features, frames), got {shape}")
                net = Conv2dStream(channels, pools_2d, lstm_2d)
            self.streams[name] = net
        if fusion == "nonlocal":
            if attention_tokens == "streams":
                dims = {n: s.out_features for n, s in self.streams.items()}
            else:
                dims = {n: (s.out_features if isinstance(s, Conv1dStream) else s.map_features)
                        for n, s in self.streams.items()}
            self.project = nn.ModuleDict({n: nn.Linear(d, width) for n, d in dims.items()})
            self.attention: NonLocalBlock | None = NonLocalBlock(width)
            head_in = width
        else:
            self.project, self.attention = None, None
            head_in = sum(s.out_features for s in self.streams.values())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_in, num_classes)

    @property
    def last_attention(self) -> torch.Tensor | None:
        """The non-local block's last affinity (B, tokens, tokens), or None without attention."""
        return None if self.attention is None else self.attention.last_attention

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_streams):
            raise ValueError(f"expected {len(self.input_streams)} input(s) {list(self.input_streams)}, got {len(inputs)}")
        named = zip(self.input_streams, inputs)
        if self.attention is None:
            h = torch.cat([self.streams[n](x) for n, x in named], dim=1)
        else:
            if self.attention_tokens == "streams":
                tokens = [self.project[n](self.streams[n](x)).unsqueeze(1) for n, x in named]
            else:
                tokens = [self.project[n](self.streams[n].tokens(x)) for n, x in named]
            h = self.attention(torch.cat(tokens, dim=1)).mean(dim=1)
        return self.classifier(self.dropout(h))


# (name, input kinds the streams may take, defaults); "streams" in the defaults makes the model multi-input.
_VARIANTS: dict[str, tuple[tuple[str, ...], dict]] = {
    "ha2024_type1": (("waveform", "time_frequency"), {"streams": ("raw", "mfcc"), "fusion": "concat"}),
    "ha2024_type2a": (("waveform",), {"streams": ("raw",), "fusion": "concat"}),
    "ha2024_type2b": (("time_frequency",), {"streams": ("mfcc",), "lstm_2d": None, "fusion": "concat"}),
    "ha2024_type3": (("waveform", "time_frequency"),
                     {"streams": ("raw", "mfcc", "stft"), "lstm_2d": None, "fusion": "concat"}),
    "ha2024_type4": (("time_frequency",), {"streams": ("mfcc",), "lstm_2d": None, "fusion": "nonlocal",
                                            "attention_tokens": "positions"}),
    "ha2024_proposed": (("waveform", "time_frequency"), {"streams": ("raw", "mfcc", "stft"), "fusion": "nonlocal"}),
}
_VARIANTS["ha2024_type2b_8k"] = _VARIANTS["ha2024_type2b"]
_VARIANTS["ha2024_type4_8k"] = _VARIANTS["ha2024_type4"]
_VARIANTS["ha2024_proposed_8k"] = _VARIANTS["ha2024_proposed"]

for _name, (_inputs, _defaults) in _VARIANTS.items():
    register_model(_name, inputs=_inputs, paper="ha2024", **_defaults)(Ha2024Net)
