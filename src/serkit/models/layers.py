"""Building blocks shared by several models."""

from __future__ import annotations

import torch
from torch import nn


class LuongDotAttention(nn.Module):
    """Luong et al. (2015) dot-product attention with the last state as the query.

    Given source states ``h`` (B, T, D): score_s = h_T . h_s, a = softmax(score), c = sum_s a_s h_s and the
    attentional state tanh(W_c [c; h_T]) of ``units`` features. ``last_weights`` keeps the last alignment (B, T).
    """

    def __init__(self, dim: int, units: int = 128):
        super().__init__()
        self.combine = nn.Linear(2 * dim, units, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths`` (B,): the frames of each item that are not padding; the query is then the state of its last
        such frame, and the padding gets no weight. None: every frame counts, the query is the last."""
        if lengths is None:
            query = h[:, -1, :]
        else:
            query = h[torch.arange(h.shape[0], device=h.device), lengths - 1]
        scores = torch.einsum("btd,bd->bt", h, query)
        if lengths is not None:
            frames = torch.arange(h.shape[1], device=h.device)[None, :]
            scores = scores.masked_fill(frames >= lengths[:, None], float("-inf"))
        weights = torch.softmax(scores, dim=1)
        self.last_weights = weights.detach()
        context = torch.einsum("bt,btd->bd", weights, h)
        return torch.tanh(self.combine(torch.cat([context, query], dim=1)))


def padded_lengths(x: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """(B,) frames of each feature sequence ``x`` (B, F, T) that come before its trailing padding.

    A clip padded with zeros to a fixed length ends in frames that are all the same (the features of digital
    silence, the same after normalisation): a run of two or more identical frames at the end is padding. A clip
    that fills the length, or ends in speech, keeps every frame (its last frame is never taken alone for padding).
    Done in tensors, so it exports to ONNX with the model."""
    t = x.shape[-1]
    differs = ((x - x[:, :, -1:]).abs().amax(dim=1) > atol).to(x.dtype)  # (B, T): frames unlike the last one
    positions = torch.arange(1, t + 1, device=x.device, dtype=x.dtype)
    last_unlike = (differs * positions).amax(dim=1).long()  # 1-based; 0 when every frame is like the last
    trailing = t - last_unlike  # frames equal to the last, at the end (the last included)
    return torch.where(trailing > 1, last_unlike, torch.full_like(last_unlike, t)).clamp_min(1)


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    raise ValueError(f"activation: unknown {name!r} (relu, leaky_relu)")
