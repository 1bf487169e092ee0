"""Heads on pretrained-encoder features.

``probe``: an MLP on one clip vector ``(B, D)`` (pooled states, layers concatenated) or on ``(B, L, D)`` (one pooled
vector per encoder layer, the ``whisper`` frontend with ``combine: stack``); for the latter the head learns one
weight per layer (softmax-normalised, initialised equal: the "weighted sum of hidden states" of SUPERB, Yang et al.
2021), then runs the MLP. With ``hidden: []`` it is a linear (softmax regression) head.

``attentive_probe``: attentive statistics pooling (Okabe et al. 2018) over a frozen encoder's frame sequence
``(B, D + 1, T)`` whose last row marks the clip's frames (1) against padding (0), so padded frames get no weight;
then an MLP. It learns which frames carry the emotion instead of averaging them all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from serkit.models.registry import register_model
from serkit.models.serkit_cnn import AttentiveStatsPooling


class EncoderProbe(nn.Module):
    """(weighted layer sum) -> LayerNorm -> [Linear, GELU, Dropout] x len(hidden) -> Linear.

    Parameters
    ----------
    num_classes : output classes.
    input_shape : (D,) or (L, D) of one item.
    hidden : widths of the hidden layers; () for a linear head.
    dropout : after each hidden layer and on the input.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], *, hidden: Sequence[int] = (256,),
                 dropout: float = 0.3):
        super().__init__()
        shape = tuple(int(n) for n in input_shape)
        if len(shape) not in (1, 2):
            raise ValueError(f"input_shape: expected (features,) or (layers, features), got {shape}")
        self.layer_logits = nn.Parameter(torch.zeros(shape[0])) if len(shape) == 2 else None
        width = shape[-1]
        blocks: list[nn.Module] = [nn.LayerNorm(width), nn.Dropout(dropout)]
        for h in hidden:
            blocks += [nn.Linear(width, int(h)), nn.GELU(), nn.Dropout(dropout)]
            width = int(h)
        blocks.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*blocks)

    def layer_weights(self) -> torch.Tensor | None:
        """The softmax weights over layers (None for vector input)."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_logits is not None:
            x = torch.einsum("bld,l->bd", x, torch.softmax(self.layer_logits, dim=0))
        return self.net(x)


class AttentiveProbe(nn.Module):
    """Per-frame LayerNorm and projection -> masked attention weights -> weighted mean and std -> MLP.

    Parameters
    ----------
    num_classes : output classes.
    input_shape : (D + 1, T) of one item (the last row is the frame mask).
    hidden : width of the frame projection and of the MLP's hidden layer.
    attention : width of the attention scorer.
    dropout : on the pooled vector and in the MLP.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], *, hidden: int = 256, attention: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        shape = tuple(int(n) for n in input_shape)
        if len(shape) != 2 or shape[0] < 2:
            raise ValueError(f"input_shape: expected (features + 1 mask row, frames), got {shape}")
        width = shape[0] - 1
        self.frame_norm = nn.LayerNorm(width)
        self.project = nn.Sequential(nn.Linear(width, hidden), nn.GELU())
        self.pool = AttentiveStatsPooling(hidden, attention)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))

    @property
    def last_weights(self) -> torch.Tensor | None:
        """The attention weights (B, T) of the last batch (zero on padding)."""
        return self.pool.last_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = x[:, -1] > 0.5  # (B, T)
        h = self.project(self.frame_norm(x[:, :-1].transpose(1, 2)))  # (B, T, H)
        return self.head(self.pool(h.transpose(1, 2), mask=valid))


# example inputs: 32 features + the frame-mask row over 20 frames; (layers, features) for the probe
register_model("attentive_probe", example_input=(33, 20), inputs=("frame_sequence",),
               paper="serkit: attentive statistics pooling over a frozen encoder's frames + MLP")(AttentiveProbe)
register_model("probe", example_input=(7, 32), inputs=("vector", "layer_vectors"),
               paper="serkit: MLP / linear head on pretrained-encoder features, learned layer weights")(EncoderProbe)
