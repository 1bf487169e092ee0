"""Parallel 2D CNNs + Transformer encoder on MFCC maps: An & Ruan (2021) and Islam ("Emotion Recognition using
Speech Analysis for Mental Health Assessment Through Model Parallelism"), with islam's device map.

Both papers describe the same network and leave out its figure; the widths here are systems.md's defaults and
every one is an option:

* two identical convolution branches on the (1, n_mfcc, T) MFCC map, each three blocks of
  Conv2D 3x3 (padding 1) -> BatchNorm -> ReLU -> MaxPool -> dropout, widths 16, 32, 64, pools 2, 4, 4,
  dropout 0.3, flattened (40 x 282 -> 20 x 141 -> 5 x 35 -> 1 x 8: 512 features each);
* a Transformer branch: MaxPool over time (4) of the MFCC sequence, a 4-layer Transformer encoder
  (d_model = n_mfcc = 40, 4 heads, feed-forward 512, dropout 0.4, post-norm, no positional encoding:
  neither paper names one), then the mean over time (40 features);
* the three concatenated (1064 features) -> Linear -> class logits (softmax in the loss).

Model parallelism (islam): ``device_map`` places each part (``cnn1``, ``cnn2``, ..., ``transformer``,
``head``) on a device. ``forward`` sends the input to each branch's device, gathers the branch outputs on the
head's device, and returns the logits on the device the input came from, so a mapped model is a drop-in
replacement for the unmapped one: the trainer, the predictor and the loss see tensors on their own device.
On GPUs the branches overlap in time without threads because CUDA kernels are launched asynchronously.

Placement rules (documented because the trainer calls ``model.to(training.device)``):

* a mapped model ignores the *device* part of ``.to(...)`` (dtype casts still apply), so the trainer keeps
  the placement; set ``training.device`` to where the data and loss should live (usually ``cpu`` or the head's
  GPU);
* ``.cpu()`` / ``.cuda()`` do move every part (they bypass ``.to``); ``forward`` reads each branch's device
  from its parameters, so the model still runs, and :meth:`ParallelCNNTransformer.place` maps it again;
* ``device_map="auto"`` spreads the convolution branches and the Transformer round-robin over the visible
  CUDA devices (the head on the first), or keeps everything on the CPU when there is none: a recipe with
  ``auto`` runs unchanged on one CPU and a saved model loads on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from serkit.errors import ConfigError
from serkit.models.registry import register_model

DeviceMap = Mapping[str, str] | str


class ConvBranch(nn.Module):
    """Blocks of Conv2D (same padding) -> BatchNorm -> ReLU -> MaxPool -> dropout over a (1, F, T) map."""

    def __init__(self, input_hw: tuple[int, int], channels: Sequence[int], pools: Sequence[int], kernel_size: int,
                 dropout: float):
        super().__init__()
        if len(channels) != len(pools):
            raise ValueError(f"conv_channels {tuple(channels)} and conv_pools {tuple(pools)} differ in length")
        height, width = input_hw
        blocks: list[nn.Module] = []
        in_ch = 1
        for out_ch, pool in zip(channels, pools):
            blocks += [
                nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(),
                nn.MaxPool2d(pool),
                nn.Dropout(dropout),
            ]
            in_ch = out_ch
            height, width = height // pool, width // pool
            if height < 1 or width < 1:
                raise ValueError(f"input_shape {input_hw}: the pools {tuple(pools)} shrink the map to nothing")
        self.blocks = nn.Sequential(*blocks)
        self.out_features = in_ch * height * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.unsqueeze(1)).flatten(1)


class TransformerBranch(nn.Module):
    """MaxPool over time, a Transformer encoder over the pooled frames (tokens of n_mfcc features), time mean."""

    def __init__(self, n_features: int, frames: int, *, time_pool: int, layers: int, heads: int,
                 feedforward: int, dropout: float):
        super().__init__()
        if n_features % heads:
            raise ValueError(f"transformer_heads={heads} must divide the feature size {n_features} (d_model)")
        if frames // time_pool < 1:
            raise ValueError(f"input of {frames} frames is shorter than transformer_time_pool={time_pool}")
        self.pool = nn.MaxPool1d(time_pool)
        layer = nn.TransformerEncoderLayer(n_features, heads, feedforward, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_features = n_features

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).transpose(1, 2)  # (B, F, T) -> (B, T // pool, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.tokens(x)).mean(dim=1)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each encoder layer's self-attention weights (B, heads, T', T') for input ``x`` (B, F, T).

        Computed in eval mode (no attention dropout, so each row is a softmax summing to one); the module's
        train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            h = self.tokens(x)
            weights = []
            for layer in self.encoder.layers:
                _, w = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
                weights.append(w)
                h = layer(h)
        finally:
            self.train(was_training)
        return weights


class ParallelCNNTransformer(nn.Module):
    """Parallel 2D CNN branches + a Transformer encoder branch on MFCC maps (an2021, islam).

    Parameters
    ----------
    num_classes : classes of the output layer.
    input_shape : (n_mfcc, frames) of one item, e.g. (40, 282) for 3 s of 48 kHz audio with hop 512.
    cnn_branches : identical convolution branches (2 in the papers).
    conv_channels, conv_pools, conv_kernel_size, conv_dropout : the convolution blocks.
    transformer_time_pool, transformer_layers, transformer_heads, transformer_feedforward,
    transformer_dropout : the Transformer branch (d_model is n_mfcc).
    device_map : None (one device, moved by ``.to``), ``"auto"``, or a mapping from part names (``cnn1`` ..
        ``cnn<N>``, ``transformer``, ``head``) to devices (``"cpu"``, ``"cuda:1"``); parts left out go to the
        head's device, the head to ``"cpu"`` when not given.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        *,
        cnn_branches: int = 2,
        conv_channels: Sequence[int] = (16, 32, 64),
        conv_pools: Sequence[int] = (2, 4, 4),
        conv_kernel_size: int = 3,
        conv_dropout: float = 0.3,
        transformer_time_pool: int = 4,
        transformer_layers: int = 4,
        transformer_heads: int = 4,
        transformer_feedforward: int = 512,
        transformer_dropout: float = 0.4,
        device_map: DeviceMap | None = None,
    ):
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(f"input_shape: expected (n_mfcc, frames), got {tuple(input_shape)}")
        if cnn_branches < 1:
            raise ValueError(f"cnn_branches must be >= 1, got {cnn_branches}")
        n_features, frames = int(input_shape[0]), int(input_shape[1])
        self.cnns = nn.ModuleList(
            ConvBranch((n_features, frames), conv_channels, conv_pools, conv_kernel_size, conv_dropout)
            for _ in range(cnn_branches)
        )
        self.transformer = TransformerBranch(
            n_features, frames, time_pool=transformer_time_pool, layers=transformer_layers,
            heads=transformer_heads, feedforward=transformer_feedforward, dropout=transformer_dropout,
        )
        width = sum(c.out_features for c in self.cnns) + self.transformer.out_features
        self.head = nn.Linear(width, num_classes)
        self.device_map: dict[str, str] | None = None
        if device_map is not None:
            self.place(device_map)

    # -- placement --------------------------------------------------------------------------------------
    @property
    def part_names(self) -> list[str]:
        return [f"cnn{i + 1}" for i in range(len(self.cnns))] + ["transformer", "head"]

    def _parts(self) -> dict[str, nn.Module]:
        return dict(zip(self.part_names, [*self.cnns, self.transformer, self.head]))

    def resolve_device_map(self, device_map: DeviceMap) -> dict[str, str]:
        """The full part -> device mapping ``device_map`` stands for, validated."""
        names = self.part_names
        if isinstance(device_map, str):
            if device_map != "auto":
                raise ConfigError(f"model.device_map: expected 'auto' or a mapping of {names} to devices, "
                                  f"got {device_map!r}")
            n_gpu = torch.cuda.device_count()
            if n_gpu == 0:
                return dict.fromkeys(names, "cpu")
            branches = {name: f"cuda:{i % n_gpu}" for i, name in enumerate(names[:-1])}
            return {**branches, "head": "cuda:0"}
        unknown = sorted(set(device_map) - set(names))
        if unknown:
            raise ConfigError(f"model.device_map: unknown part(s) {unknown}; the parts are {names}")
        for name, dev in device_map.items():
            try:
                device = torch.device(dev)
            except RuntimeError as exc:
                raise ConfigError(f"model.device_map.{name}: {dev!r} is not a device ({exc})") from None
            if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
                raise ConfigError(f"model.device_map.{name}: {dev!r} asked for but {torch.cuda.device_count()} "
                                  "CUDA device(s) are visible; use device_map: auto or a map of visible devices")
            if device.type == "meta":
                raise ConfigError(f"model.device_map.{name}: the meta device holds no data")
        head = str(device_map.get("head", "cpu"))
        return {name: str(device_map.get(name, head)) for name in names}

    def place(self, device_map: DeviceMap) -> ParallelCNNTransformer:
        """Move each part to its device in ``device_map`` (see the class docstring) and remember the map."""
        resolved = self.resolve_device_map(device_map)
        for name, part in self._parts().items():
            nn.Module.to(part, torch.device(resolved[name]))
        self.device_map = resolved
        return self

    def devices(self) -> dict[str, torch.device]:
        """Where each part's parameters are now."""
        return {name: next(part.parameters()).device for name, part in self._parts().items()}

    def to(self, *args: Any, **kwargs: Any) -> ParallelCNNTransformer:
        """Like ``nn.Module.to``, except that a device-mapped model keeps its placement (dtype casts apply)."""
        if self.device_map is None:
            return super().to(*args, **kwargs)
        _, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None or memory_format is not None:
            kw: dict[str, Any] = {"non_blocking": non_blocking}
            if dtype is not None:
                kw["dtype"] = dtype
            if memory_format is not None:
                kw["memory_format"] = memory_format
            for part in self._parts().values():  # each on its own device
                nn.Module.to(part, next(part.parameters()).device, **kw)
        return self

    # -- forward ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for MFCC maps ``x`` (B, n_mfcc, frames), on ``x``'s device."""
        head_device = self.head.weight.device
        outputs = []
        for branch in [*self.cnns, self.transformer]:
            branch_device = next(branch.parameters()).device
            outputs.append(branch(x.to(branch_device, non_blocking=True)).to(head_device))
        return self.head(torch.cat(outputs, dim=1)).to(x.device)

    def attention_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The Transformer branch's self-attention weights per layer, (B, heads, T', T') each."""
        return self.transformer.attention_weights(x.to(next(self.transformer.parameters()).device))


register_model("an2021_parallel_cnn_transformer", example_input=(40, 64), paper="an2021 section 2.5; islam section IV.B (model parallelism)",
               inputs=("time_frequency",))(ParallelCNNTransformer)
# islam's variant: the same network, spread over the visible GPUs by default (all on the CPU when there is none).
register_model("islam_parallel_cnn_transformer", example_input=(40, 64), paper="islam section IV.B (model parallelism)",
               inputs=("time_frequency",), device_map="auto")(ParallelCNNTransformer)
