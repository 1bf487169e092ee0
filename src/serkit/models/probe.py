"""Heads on pretrained-encoder features: an MLP on one clip vector, optionally over a learned weighted sum of layers.

Input ``(B, D)`` (pooled states, layers concatenated) or ``(B, L, D)`` (one pooled vector per encoder layer, the
``whisper`` frontend with ``combine: stack``). For the latter the head learns one weight per layer (softmax-
normalised, initialised equal: the "weighted sum of hidden states" of SUPERB, Yang et al. 2021), then runs the MLP.
With ``hidden: []`` it is a linear (softmax regression) head trained by the runner like any torch model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from serkit.models.registry import register_model


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


register_model("probe", inputs=("vector", "layer_vectors"),
               paper="serkit: MLP / linear head on pretrained-encoder features, learned layer weights")(EncoderProbe)
