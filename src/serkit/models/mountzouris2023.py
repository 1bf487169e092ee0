"""Mountzouris, Perikos & Hatzilygeroudis (2023), "Speech Emotion Recognition Using Convolutional Neural
Networks with Attention Mechanism": SDNN (section 3.2), LSTM (3.3), LSTM-ATN (3.4), CNN (3.5) and CNN-ATN (3.6)
on 40 MFCCs. The DBN of section 3.1 (RBM pre-training) is not here yet.

Input: MFCC sequences (B, n_mfcc, T) for the LSTM and CNN models; time-averaged MFCCs (B, n_mfcc) for SDNN.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from serkit.models.layers import LuongDotAttention, activation
from serkit.models.registry import register_model


class MountzourisCNN(nn.Module):
    """Five Conv1D blocks (Conv -> BatchNorm -> activation [-> dropout]) then a flatten or attention head.

    Section 3.5 (CNN) and 3.6 (CNN-ATN). The paper's prose gives kernels 9, 9, 7, 7, 5 but its tensor shapes
    (228 -> 220 -> 214 -> 210 -> 206 -> 204 frames) need 9, 7, 5, 5, 3: we follow the shapes (systems.md).
    Dropout 0.5 follows the first four blocks in the CNN and the first three in the CNN-ATN, as section 3.6 and
    section 4 state ("the 1st, 2nd and 3rd convolution layers also use dropout"). The paper's tested options are
    kept: ``padding="same"`` (its zero-padding test), ``activation="leaky_relu"`` and ``dropout=0``.

    With ``attention=True`` the last block's output sequence goes through Luong dot attention (query = last
    time step, 128 units, section 3.4) and a dense layer; otherwise it is flattened into a dense layer.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        attention: bool = True,
        channels: Sequence[int] = (64, 64, 32, 32, 16),
        kernel_sizes: Sequence[int] = (9, 7, 5, 5, 3),
        dropout: float = 0.5,
        dropout_blocks: int | None = None,
        padding: Literal["valid", "same"] = "valid",
        activation_name: Literal["relu", "leaky_relu"] = "relu",
        attention_units: int = 128,
    ):
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(f"input_shape: expected (n_mfcc, frames), got {tuple(input_shape)}")
        if len(channels) != len(kernel_sizes):
            raise ValueError("channels and kernel_sizes must have the same length")
        n_features, frames = int(input_shape[0]), int(input_shape[1])
        if dropout_blocks is None:
            dropout_blocks = 3 if attention else len(channels) - 1
        blocks: list[nn.Module] = []
        in_ch = n_features
        for i, (out_ch, k) in enumerate(zip(channels, kernel_sizes)):
            layers: list[nn.Module] = [
                nn.Conv1d(in_ch, out_ch, k, padding=0 if padding == "valid" else "same"),
                nn.BatchNorm1d(out_ch),
                activation(activation_name),
            ]
            if dropout > 0 and i < dropout_blocks:
                layers.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*layers))
            in_ch = out_ch
            if padding == "valid":
                frames -= k - 1
        if frames < 1:
            raise ValueError(f"input_shape: {tuple(input_shape)} has too few frames for kernels {tuple(kernel_sizes)}")
        self.features = nn.Sequential(*blocks)
        self.output_frames = frames
        if attention:
            self.attention: LuongDotAttention | None = LuongDotAttention(in_ch, attention_units)
            self.head = nn.Linear(attention_units, num_classes)
        else:
            self.attention = None
            self.head = nn.Linear(in_ch * frames, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, C, T)
        if self.attention is not None:
            z = self.attention(h.transpose(1, 2))
        else:
            # Keras flattens (T, C) time-major; the order does not matter for a dense layer.
            z = h.flatten(1)
        return self.head(z)


register_model("mountzouris2023_cnn", paper="mountzouris2023 section 3.5", frontends=("mfcc",), attention=False)(
    MountzourisCNN
)
register_model("mountzouris2023_cnn_atn", paper="mountzouris2023 section 3.6", frontends=("mfcc",), attention=True)(
    MountzourisCNN
)


class MountzourisSDNN(nn.Module):
    """The simple deep neural network of section 3.2, on time-averaged MFCCs.

    The 40 averaged coefficients enter as a (40, 1) sequence; two dense layers act on each coefficient
    position (Keras ``Dense`` on a 3-D input: 1 -> 128 -> 64 features, ReLU, dropout 0.1), the result is
    flattened (40 x 64 = 2560) and a dense layer gives the classes. Input: (B, n_mfcc), i.e. a recipe with
    ``pooling: mean``.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.1,
        activation_name: Literal["relu", "leaky_relu"] = "relu",
    ):
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"input_shape: expected (n_mfcc,) time-averaged features (pooling: mean), got "
                             f"{tuple(input_shape)}")
        layers: list[nn.Module] = []
        width = 1
        for units in hidden:
            layers += [nn.Linear(width, units), activation(activation_name), nn.Dropout(dropout)]
            width = units
        self.per_position = nn.Sequential(*layers)
        self.head = nn.Linear(int(input_shape[0]) * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.per_position(x.unsqueeze(-1)).flatten(1))


class MountzourisLSTM(nn.Module):
    """The stacked LSTM of section 3.3 and, with ``attention=True``, the LSTM-ATN of section 3.4.

    LSTM 100 (sequence out) -> LSTM 50 -> dropout 0.5 -> dense. With attention the second LSTM returns its
    sequence, Luong dot attention with the last state as query gives a 128-unit attentional state, then
    dropout 0.5 and the dense layer. Input: MFCC sequences (B, n_mfcc, T).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        attention: bool = False,
        hidden: Sequence[int] = (100, 50),
        dropout: float = 0.5,
        attention_units: int = 128,
    ):
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(f"input_shape: expected (n_mfcc, frames), got {tuple(input_shape)}")
        sizes = [int(input_shape[0]), *hidden]
        self.lstms = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes[:-1], sizes[1:]))
        self.attention = LuongDotAttention(sizes[-1], attention_units) if attention else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(attention_units if attention else sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, T, n_mfcc)
        for lstm in self.lstms:
            h, _ = lstm(h)
        z = self.attention(h) if self.attention is not None else h[:, -1, :]
        return self.head(self.dropout(z))


register_model("mountzouris2023_sdnn", paper="mountzouris2023 section 3.2", frontends=("mfcc",))(MountzourisSDNN)
register_model("mountzouris2023_lstm", paper="mountzouris2023 section 3.3", frontends=("mfcc",), attention=False)(
    MountzourisLSTM
)
register_model("mountzouris2023_lstm_atn", paper="mountzouris2023 section 3.4", frontends=("mfcc",),
               attention=True)(MountzourisLSTM)
