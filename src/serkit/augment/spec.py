"""SpecAugment-style masking of batched feature maps (Park et al. 2019, without time warping)."""

from __future__ import annotations

import torch
from torch import nn

from serkit.augment.config import SpecAugmentConfig
from serkit.errors import ConfigError

__all__ = ["SpecAugment", "spec_augment"]


def _band_masks(
    batch: int, n_masks: int, max_width: int, size: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(batch, size) boolean: union of ``n_masks`` bands, widths uniform in [0, max_width]."""
    if n_masks == 0 or max_width == 0:
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    max_width = min(max_width, size)
    widths = torch.randint(0, max_width + 1, (batch, n_masks), generator=generator, device=gen_device)
    # Start uniform in [0, size - width], drawn as a fraction so one call covers every width.
    fractions = torch.rand((batch, n_masks), generator=generator, device=gen_device)
    starts = (fractions * (size - widths + 1).to(fractions.dtype)).floor().long()
    widths, starts = widths.to(device), starts.to(device)
    positions = torch.arange(size, device=device)
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    return inside.any(dim=1)


def spec_augment(
    x: torch.Tensor,
    *,
    freq_masks: int = 2,
    freq_width: int = 8,
    time_masks: int = 2,
    time_width: int = 20,
    generator: torch.Generator | None = None,
    training: bool = True,
) -> torch.Tensor:
    """Mask random frequency bands and time spans of every item of a batch.

    Parameters
    ----------
    x : features (B, F, T) or (B, C, F, T). Each item gets its own masks; the channels of an
        item share them (so deltas are masked where their base features are).
    freq_masks, freq_width : number of frequency masks, and the largest width of each (bins);
        each width is drawn uniformly from [0, freq_width].
    time_masks, time_width : the same along time (frames).
    generator : seeded source of the masks (same generator state, same masks).
    training : ``False`` returns ``x`` unchanged (the evaluation no-op).

    Returns
    -------
    A new tensor; masked cells hold the mean of their item (over all its cells), so that
    masking does not shift the item's level the way zeros would for log features.
    """
    if not training:
        return x
    if x.dim() not in (3, 4):
        raise ConfigError(f"spec_augment: expected features (B, F, T) or (B, C, F, T), got shape {tuple(x.shape)}")
    for name, value in (("freq_masks", freq_masks), ("freq_width", freq_width),
                        ("time_masks", time_masks), ("time_width", time_width)):
        if value < 0:
            raise ConfigError(f"spec_augment {name} must be >= 0, got {value}")
    batch, n_freq, n_time = x.shape[0], x.shape[-2], x.shape[-1]
    freq = _band_masks(batch, freq_masks, freq_width, n_freq, generator, x.device)
    time = _band_masks(batch, time_masks, time_width, n_time, generator, x.device)
    mask = freq[:, :, None] | time[:, None, :]
    if x.dim() == 4:
        mask = mask[:, None]
    item_means = x.reshape(batch, -1).mean(dim=1).reshape((batch,) + (1,) * (x.dim() - 1))
    return torch.where(mask, item_means.to(x.dtype), x)


class SpecAugment(nn.Module):
    """:func:`spec_augment` as a module: active in ``train()`` mode, a no-op in ``eval()``."""

    def __init__(self, cfg: SpecAugmentConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or SpecAugmentConfig()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spec_augment(
            x,
            freq_masks=self.cfg.freq_masks,
            freq_width=self.cfg.freq_width,
            time_masks=self.cfg.time_masks,
            time_width=self.cfg.time_width,
            generator=self.generator,
            training=self.training,
        )
