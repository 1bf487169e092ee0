"""Akalya Devi et al. (2022), "2-D Attention-Based Convolutional Recurrent Neural Network for Speech Emotion
Recognition": the ACRNN (section 2.3) and the paper's two baselines, a 1D CNN-LSTM and a temporal 2D CNN
(section 2.3, Figs. 2-3, whose layers the paper does not describe).

Input: log mels with deltas and delta-deltas, ``(B, 3, n_mels, frames)`` from the ``logmel_deltas`` frontend
(40 mels, 25 ms window, 10 ms hop, section 2.2), over 3 s segments: 301 frames. A plain ``(B, n_mels, frames)``
log-mel input is read as one channel. The recipe's ``segments`` section cuts utterances into segments and
averages the segments' probabilities per utterance; the models only see segments.

All three models are one network with switchable parts, built from the shared blocks below:

========================  ====================  ==================  ==============  ======================
registered name           convolutions          per-step linear     recurrence      pooling over time
========================  ====================  ==================  ==============  ======================
``akalya2022_acrnn``      2D, 128 + 4 x 256     768                 BiLSTM 128 x 2  attention (eq. 4, 5)
``akalya2022_cnn1d_lstm`` 1D, 128 + 256         none                LSTM 128        last state
``akalya2022_cnn2d``      2D, 128 + 4 x 256     768                 none            mean
========================  ====================  ==================  ==============  ======================

Each ends with the paper's head: Dense 64 + BatchNorm + activation -> Dense C.

Departures and choices (the paper is silent unless stated):

* Five convolutions, as in Chen et al. (2018), on which the paper builds (systems.md); the paper says "several".
  Kernels 5 x 2 (time x frequency), "same" padding, one 2 x 2 max pooling after the first (section 2.3).
* Leaky ReLU (slope 0.01) after every convolution and the 64-unit layer, as in Chen et al.'s ACRNN; the
  768-unit per-time-step layer is linear (a dimension-reduction layer, section 2.3).
* The attention score ``W h_t`` has no bias: a bias cancels in the softmax of eq. (4).
* Baselines: the 1D CNN-LSTM convolves over time with the 3 x 40 features as channels (128 and 256 filters,
  kernel 5, a max pooling of 2 after the first), then an LSTM of 128 units whose last state feeds the head.
  The temporal 2D CNN is the ACRNN without its recurrence and attention: the per-time-step features are
  averaged over time. Both are this project's reading of the paper's names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from serkit.models.layers import activation
from serkit.models.registry import register_model

Activation = Literal["relu", "leaky_relu"]


class ConvStack2d(nn.Module):
    """Conv2D blocks over (time, frequency) with one max pooling after the first block (ACRNN's CNN part).

    Input (B, C, T, F); output (B, channels[-1], T', F') with T' = T // pool[0], F' = F // pool[1].
    """

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: tuple[int, int],
                 pool: tuple[int, int], activation_name: Activation):
        super().__init__()
        # "Same" padding written out, as torch pads an even kernel (2) with a copy and a warning: the extra
        # row goes after, as in TensorFlow.
        (kt, kf) = kernel_size
        same = nn.ZeroPad2d(((kf - 1) // 2, kf // 2, (kt - 1) // 2, kt // 2))
        layers: list[nn.Module] = []
        for i, out_channels in enumerate(channels):
            layers += [same, nn.Conv2d(in_channels, out_channels, kernel_size), activation(activation_name)]
            if i == 0:
                layers.append(nn.MaxPool2d(pool))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvStack1d(nn.Module):
    """Conv1D blocks over time with one max pooling after the first block. Input (B, C, T); output (B, C', T')."""

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: int, pool: int,
                 activation_name: Activation):
        super().__init__()
        layers: list[nn.Module] = []
        for i, out_channels in enumerate(channels):
            layers += [nn.Conv1d(in_channels, out_channels, kernel_size, padding="same"), activation(activation_name)]
            if i == 0:
                layers.append(nn.MaxPool1d(pool))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AttentionPooling(nn.Module):
    """Attention pooling over time (eq. 4 and 5): a_t = softmax_t(W h_t), c = sum_t a_t h_t.

    Input (B, T, D); output (B, D). ``last_weights`` keeps the last weights (B, T).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(h).squeeze(-1), dim=1)
        self.last_weights = weights.detach()
        return torch.einsum("bt,btd->bd", weights, h)


class ClassifierHead(nn.Sequential):
    """Dense ``hidden`` + BatchNorm + activation [+ dropout] -> Dense ``num_classes`` (section 2.3)."""

    def __init__(self, in_features: int, num_classes: int, hidden: int, activation_name: Activation,
                 dropout: float):
        layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), activation(activation_name)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, num_classes))
        super().__init__(*layers)


class AkalyaSER(nn.Module):
    """The ACRNN of akalya2022 and its baselines: convolutions -> [per-step linear] -> [(Bi)LSTM] -> pooling ->
    head (see the module docstring for the three registered configurations).

    Parameters
    ----------
    num_classes : emotion classes.
    input_shape : one item's features, (channels, n_mels, frames) or (n_mels, frames).
    conv : "2d" (over time x frequency) or "1d" (over time, channels x mels as input channels).
    channels : convolution widths; the first is followed by the max pooling.
    kernel_size : (time, frequency) for "2d"; the time size alone is used by "1d".
    pool : (time, frequency) max pooling for "2d"; the time size alone is used by "1d".
    linear_units : the per-time-step linear layer's width (768); None or 0 for none.
    rnn : "bilstm", "lstm" or "none".
    rnn_units : LSTM cells per direction (128).
    pooling : "attention" (eq. 4-5), "mean" or "last" (the last time step).
    head_units : the dense layer before the classifier (64).
    activation_name : "leaky_relu" (Chen et al. 2018) or "relu".
    dropout : before the classifier; 0 as in the paper.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        conv: Literal["2d", "1d"] = "2d",
        channels: Sequence[int] = (128, 256, 256, 256, 256),
        kernel_size: Sequence[int] = (5, 2),
        pool: Sequence[int] = (2, 2),
        linear_units: int | None = 768,
        rnn: Literal["bilstm", "lstm", "none"] = "bilstm",
        rnn_units: int = 128,
        pooling: Literal["attention", "mean", "last"] = "attention",
        head_units: int = 64,
        activation_name: Activation = "leaky_relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape: expected (channels, n_mels, frames) or (n_mels, frames), got {shape}")
        if not channels:
            raise ValueError("channels: give at least one convolution width")
        if len(kernel_size) != 2 or len(pool) != 2:
            raise ValueError(f"kernel_size and pool are (time, frequency) pairs, got {kernel_size} and {pool}")
        in_channels, n_mels, frames = shape
        self.conv_kind = conv
        if conv == "2d":
            self.convs: nn.Module = ConvStack2d(in_channels, channels, (kernel_size[0], kernel_size[1]),
                                                (pool[0], pool[1]), activation_name)
            steps, step_features = frames // pool[0], channels[-1] * (n_mels // pool[1])
        elif conv == "1d":
            self.convs = ConvStack1d(in_channels * n_mels, channels, kernel_size[0], pool[0], activation_name)
            steps, step_features = frames // pool[0], channels[-1]
        else:
            raise ValueError(f"conv: expected '2d' or '1d', got {conv!r}")
        if steps < 1 or step_features < 1:
            raise ValueError(f"input_shape: {tuple(input_shape)} is too small for pooling {tuple(pool)}")
        self.output_steps = steps
        self.step_linear = nn.Linear(step_features, linear_units) if linear_units else None
        width = linear_units or step_features
        if rnn == "none":
            self.rnn: nn.LSTM | None = None
        elif rnn in ("bilstm", "lstm"):
            self.rnn = nn.LSTM(width, rnn_units, batch_first=True, bidirectional=rnn == "bilstm")
            width = rnn_units * (2 if rnn == "bilstm" else 1)
        else:
            raise ValueError(f"rnn: expected 'bilstm', 'lstm' or 'none', got {rnn!r}")
        if pooling not in ("attention", "mean", "last"):
            raise ValueError(f"pooling: expected 'attention', 'mean' or 'last', got {pooling!r}")
        self.pooling = pooling
        self.attention = AttentionPooling(width) if pooling == "attention" else None
        self.head = ClassifierHead(width, num_classes, head_units, activation_name, dropout)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """The per-time-step features (B, T', D) that the pooling summarises."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if self.conv_kind == "2d":
            h = self.convs(x.transpose(2, 3))  # (B, C, T, F): kernels and pooling are (time, frequency)
            h = h.permute(0, 2, 1, 3).flatten(2)  # (B, T', C' * F')
        else:
            h = self.convs(x.flatten(1, 2)).transpose(1, 2)  # (B, T', C')
        if self.step_linear is not None:
            h = self.step_linear(h)
        if self.rnn is not None:
            h, _ = self.rnn(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.sequence(x)
        if self.attention is not None:
            z = self.attention(h)
        elif self.pooling == "mean":
            z = h.mean(dim=1)
        else:
            z = h[:, -1, :]
        return self.head(z)


register_model("akalya2022_acrnn", example_input=(3, 40, 24), paper="akalya2022 section 2.3 (ACRNN, Fig. 1)", inputs=("time_frequency",),
               conv="2d", linear_units=768, rnn="bilstm", pooling="attention")(AkalyaSER)
register_model("akalya2022_cnn1d_lstm", example_input=(3, 40, 24), paper="akalya2022 section 2.3 (1D CNN-LSTM baseline, Fig. 2)",
               inputs=("time_frequency",), conv="1d", channels=(128, 256), linear_units=None, rnn="lstm",
               pooling="last")(AkalyaSER)
register_model("akalya2022_cnn2d", example_input=(3, 40, 24), paper="akalya2022 section 2.3 (temporal 2D CNN baseline, Fig. 3)",
               inputs=("time_frequency",), conv="2d", linear_units=768, rnn="none", pooling="mean")(AkalyaSER)
