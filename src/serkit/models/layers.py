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

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        query = h[:, -1, :]
        scores = torch.einsum("btd,bd->bt", h, query)
        weights = torch.softmax(scores, dim=1)
        self.last_weights = weights.detach()
        context = torch.einsum("bt,btd->bd", weights, h)
        return torch.tanh(self.combine(torch.cat([context, query], dim=1)))


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    raise ValueError(f"activation: unknown {name!r} (relu, leaky_relu)")
