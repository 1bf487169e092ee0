"""Mountzouris, Perikos & Hatzilygeroudis (2023), "Speech Emotion Recognition Using Convolutional Neural
Networks with Attention Mechanism": DBN (section 3.1), SDNN (3.2), LSTM (3.3), LSTM-ATN (3.4), CNN (3.5) and
CNN-ATN (3.6) on 40 MFCCs.

Input: MFCC sequences (B, n_mfcc, T) for the LSTM and CNN models; time-averaged MFCCs (B, n_mfcc) for SDNN and DBN.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from serkit.models.layers import LuongDotAttention, activation, padded_lengths
from serkit.models.registry import register_model

log = logging.getLogger(__name__)


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


register_model("mountzouris2023_cnn", example_input=(40, 60), paper="mountzouris2023 section 3.5", inputs=("time_frequency",), attention=False)(
    MountzourisCNN
)
register_model("mountzouris2023_cnn_atn", example_input=(40, 60), paper="mountzouris2023 section 3.6", inputs=("time_frequency",),
               attention=True)(
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

    ``read``: ``last_valid`` (default) takes the state of each clip's last frame before the zero padding that
    brings every clip to the recipe's length (:func:`~serkit.models.layers.padded_lengths`), and the attention
    ignores the padding; ``last`` takes the state after the padding, as the model did before (up to 150 frames of
    silence after a short clip wash its speech out of the LSTM's state; kept for the ablation).
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
        read: Literal["last_valid", "last"] = "last_valid",
    ):
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(f"input_shape: expected (n_mfcc, frames), got {tuple(input_shape)}")
        if read not in ("last_valid", "last"):
            raise ValueError(f"read: expected 'last_valid' or 'last', got {read!r}")
        self.read = read
        sizes = [int(input_shape[0]), *hidden]
        self.lstms = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes[:-1], sizes[1:]))
        self.attention = LuongDotAttention(sizes[-1], attention_units) if attention else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(attention_units if attention else sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = padded_lengths(x) if self.read == "last_valid" else None
        h = x.transpose(1, 2)  # (B, T, n_mfcc)
        for lstm in self.lstms:
            h, _ = lstm(h)  # forward LSTMs: a frame's state never depends on the padding after it
        if self.attention is not None:
            z = self.attention(h, lengths)
        elif lengths is None:
            z = h[:, -1, :]
        else:
            z = h[torch.arange(h.shape[0], device=h.device), lengths - 1]
        return self.head(self.dropout(z))


register_model("mountzouris2023_sdnn", example_input=(40,), paper="mountzouris2023 section 3.2", inputs=("vector",))(MountzourisSDNN)
register_model("mountzouris2023_lstm", example_input=(40, 30), paper="mountzouris2023 section 3.3", inputs=("time_frequency",),
               attention=False)(
    MountzourisLSTM
)
register_model("mountzouris2023_lstm_atn", example_input=(40, 30), paper="mountzouris2023 section 3.4", inputs=("time_frequency",),
               attention=True)(MountzourisLSTM)


class MountzourisDBN(nn.Module):
    """The deep belief network of section 3.1: a stack of RBMs pre-trained greedily, then fine-tuned.

    Time-averaged 40 MFCCs -> three hidden layers of 128 units. :meth:`pretrain` trains each layer as a
    restricted Boltzmann machine on the output of the layers below it (contrastive divergence CD-k, plain SGD,
    lr 0.005, 50 epochs, batch 32, as the paper's settings of the ``deep-belief-network`` package it used);
    the experiment runner calls it on the fold's normalised training features before fine-tuning. The
    fine-tuning is ordinary supervised training of the stacked network (ReLU, dropout 0.2) plus a softmax
    output layer (the recipe: SGD lr 0.05, batch 32).

    The RBMs are written here (not scikit-learn's ``BernoulliRBM``) because its binary visible units need inputs
    in [0, 1] and its sigmoid hidden units do not match the ReLU network the paper fine-tunes. Choices where the
    paper is silent: the first RBM has Gaussian (linear) visible units, since its inputs are standardised MFCC
    averages (the package used ReLU visible units, which cannot reconstruct negative inputs); upper RBMs
    reconstruct their visible units with the network's activation; ReLU hidden units are sampled as noisy
    rectified linear units max(0, x + N(0, sigmoid(x))) (Nair & Hinton 2010), sigmoid ones as Bernoulli units.
    Each RBM's visible biases are kept as buffers (saved with the model, unused by ``forward``).

    Input: (B, n_mfcc), i.e. a recipe with ``pooling: mean``.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        hidden: Sequence[int] = (128, 128, 128),
        activation_name: Literal["relu", "sigmoid"] = "relu",
        dropout: float = 0.2,
        rbm_lr: float = 0.005,
        rbm_epochs: int = 50,
        rbm_batch_size: int = 32,
        cd_steps: int = 1,
    ):
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"input_shape: expected (n_mfcc,) time-averaged features (pooling: mean), got "
                             f"{tuple(input_shape)}")
        if activation_name not in ("relu", "sigmoid"):
            raise ValueError(f"activation_name: unknown {activation_name!r} (relu, sigmoid)")
        if not hidden:
            raise ValueError("hidden: give at least one layer")
        if rbm_epochs < 0 or rbm_batch_size < 1 or cd_steps < 1 or rbm_lr <= 0:
            raise ValueError("rbm_epochs >= 0, rbm_batch_size >= 1, cd_steps >= 1 and rbm_lr > 0 are required")
        sizes = [int(input_shape[0]), *(int(h) for h in hidden)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        for i, width in enumerate(sizes[:-1]):
            self.register_buffer(f"visible_bias{i}", torch.zeros(width))
        self.activation_name = activation_name
        self.act = nn.ReLU() if activation_name == "relu" else nn.Sigmoid()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(sizes[-1], num_classes)
        self.rbm_lr, self.rbm_epochs, self.rbm_batch_size, self.cd_steps = rbm_lr, rbm_epochs, rbm_batch_size, cd_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.dropout(self.act(layer(x)))
        return self.head(x)

    # -- greedy pre-training ----------------------------------------------------------------------------
    def _sample_hidden(self, mean_input: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.activation_name == "relu":
            noise = torch.randn(mean_input.shape, generator=gen, device=mean_input.device)
            return torch.relu(mean_input + noise * torch.sigmoid(mean_input).sqrt())
        p = torch.sigmoid(mean_input)
        return torch.bernoulli(p, generator=gen)

    def _visible_mean(self, pre_activation: torch.Tensor, level: int) -> torch.Tensor:
        return pre_activation if level == 0 else self.act(pre_activation)

    @torch.no_grad()
    def _rbm_epoch(self, level: int, data: torch.Tensor, gen: torch.Generator) -> float:
        """One CD-k epoch of RBM ``level`` over ``data`` (N, visible); returns the mean reconstruction MSE."""
        layer, b = self.layers[level], getattr(self, f"visible_bias{level}")
        W, c = layer.weight, layer.bias  # (hidden, visible), (hidden,)
        order = torch.randperm(len(data), generator=gen, device=data.device)
        total = 0.0
        for i in range(0, len(data), self.rbm_batch_size):
            v0 = data[order[i : i + self.rbm_batch_size]]
            h0 = self.act(v0 @ W.T + c)
            vk, hk = v0, h0
            for _ in range(self.cd_steps):
                h_sample = self._sample_hidden(vk @ W.T + c, gen)
                vk = self._visible_mean(h_sample @ W + b, level)
                hk = self.act(vk @ W.T + c)
            n = len(v0)
            W += self.rbm_lr * (h0.T @ v0 - hk.T @ vk) / n
            c += self.rbm_lr * (h0 - hk).mean(0)
            b += self.rbm_lr * (v0 - vk).mean(0)
            total += float(((v0 - vk) ** 2).mean()) * n
        error = total / len(data)
        if not np.isfinite(error):
            raise FloatingPointError(f"RBM {level + 1} diverged in pre-training; lower model.rbm_lr")
        return error

    @torch.no_grad()
    def pretrain(self, X: np.ndarray, *, seed: int = 0, progress: bool = False) -> dict[str, float]:
        """Greedy layer-wise RBM pre-training on training features ``X`` (N, n_mfcc), normalised already.

        Each layer is trained for ``rbm_epochs`` epochs on the previous layers' deterministic outputs.

        Returns
        -------
        dict with ``pretrain_seconds`` and each RBM's last-epoch reconstruction MSE (``rbm<i>_recon_mse``).
        """
        t0 = time.perf_counter()
        device = self.head.weight.device
        gen = torch.Generator(device=device).manual_seed(int(seed))
        data = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=device)
        if data.ndim != 2 or data.shape[1] != self.layers[0].in_features:
            raise ValueError(f"pretrain: expected X of shape (N, {self.layers[0].in_features}), got {tuple(data.shape)}")
        info: dict[str, float] = {}
        for level, layer in enumerate(self.layers):
            error = float("nan")
            for epoch in range(1, self.rbm_epochs + 1):
                error = self._rbm_epoch(level, data, gen)
                if progress and (epoch == 1 or epoch % 10 == 0 or epoch == self.rbm_epochs):
                    log.info("RBM %d/%d epoch %d: reconstruction MSE %.4f", level + 1, len(self.layers), epoch, error)
            info[f"rbm{level + 1}_recon_mse"] = round(error, 6)
            data = self.act(layer(data))
        info["pretrain_seconds"] = round(time.perf_counter() - t0, 2)
        return info


register_model("mountzouris2023_dbn", example_input=(40,), paper="mountzouris2023 section 3.1", inputs=("vector",))(MountzourisDBN)
