"""serkit's own compact model: a small 1-D CNN over a log-mel spectrogram with attentive statistics pooling.

Not from one of the papers: it is built from the zoo's parts and standard practice to be accurate on speakers it
has never heard and fast on a CPU (the default model's network). The convolution blocks are the papers' Conv1D
blocks over time (mountzouris2023's CNN, ha2024's 1-D stream: convolution, BatchNorm, ReLU) with dilations as in
x-vector TDNNs (Snyder et al. 2018) to widen the context cheaply; the time pooling is attentive statistics pooling (Okabe et al. 2018), the attention pooling of akalya2022 extended with a
weighted standard deviation, so that clips of any length map to one fixed-size vector.

Input: (B, n_mels, T) log-mel spectrograms, or (B, C, n_mels, T) with C stacked channels (e.g. logmel+deltas).
Any T works: the pooling is over time, so the network runs on clips of other lengths than it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from serkit.models.registry import register_model


class AttentiveStatsPooling(nn.Module):
    """Weighted mean and standard deviation over time with learned attention weights.

    a_t = softmax_t(v^T tanh(W h_t)); output [sum_t a_t h_t ; sqrt(sum_t a_t h_t^2 - mean^2)] of 2 x ``dim``
    features. ``last_weights`` keeps the last weights (B, T), which sum to one over time. ``mask`` (B, T), True on
    real frames, gives padding exactly zero weight.
    """

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.score = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1))
        self.last_weights: torch.Tensor | None = None

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # h: (B, D, T)
        scores = self.score(h)  # (B, 1, T)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        self.last_weights = weights.squeeze(1).detach()
        mean = (h * weights).sum(-1)
        var = (h * h * weights).sum(-1) - mean * mean
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)


class SerkitCNN(nn.Module):
    """Conv1D blocks over time (mel bands as channels, dilated like a TDNN) -> attentive stats -> classifier.

    One-dimensional convolutions over time run as dense matrix products on a CPU, several times faster per
    operation than small 2-D convolutions, which is what keeps the default model far faster than real time.

    Parameters
    ----------
    num_classes : number of output classes.
    input_shape : (n_mels, T) or (C, n_mels, T) of one item (C channels are stacked into C x n_mels inputs).
    channels, kernel_sizes, dilations, strides : one entry per convolution block (Conv1d, BatchNorm, ReLU);
        the first block's stride 2 halves the frame rate (20 ms steps), which halves the cost of every block.
    embedding : width of the hidden layer after pooling (0 = none).
    dropout : before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        channels: Sequence[int] = (64, 64, 64, 128),
        kernel_sizes: Sequence[int] = (5, 3, 3, 1),
        dilations: Sequence[int] = (1, 2, 3, 1),
        strides: Sequence[int] = (2, 1, 1, 1),
        embedding: int = 64,
        dropout: float = 0.3,
        attention_hidden: int = 32,
    ):
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"input_shape: expected (n_mels, frames) or (channels, n_mels, frames), got {shape}")
        if not len(channels) == len(kernel_sizes) == len(dilations) == len(strides):
            raise ValueError("channels, kernel_sizes, dilations and strides must have the same length")
        in_ch = shape[0] if len(shape) == 2 else shape[0] * shape[1]
        blocks: list[nn.Module] = []
        for out_ch, k, d, st in zip(channels, kernel_sizes, dilations, strides):
            blocks += [nn.Conv1d(in_ch, out_ch, k, stride=st, dilation=d, padding=d * (k - 1) // 2, bias=False),
                       nn.BatchNorm1d(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.pool = AttentiveStatsPooling(in_ch, attention_hidden)
        head: list[nn.Module] = []
        width = 2 * in_ch
        if embedding:
            head += [nn.Linear(width, embedding, bias=False), nn.BatchNorm1d(embedding), nn.ReLU(inplace=True)]
            width = embedding
        self.head = nn.Sequential(*head, nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (B, C, n_mels, T): stack the channels
            x = x.flatten(1, 2)
        return self.head(self.pool(self.features(x)))


@register_model("serkit_cnn", example_input=(40, 64), inputs=("time_frequency",), paper=None)
def serkit_cnn(num_classes: int, input_shape: Sequence[int], **options) -> SerkitCNN:
    return SerkitCNN(num_classes, input_shape, **options)
