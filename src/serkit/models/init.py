"""Initialise a model, or some of its parameters, from a checkpoint (ha2024's "pretrained" setting).

The checkpoint is a serkit model bundle (``model.pt``: its state dict is taken), a trainer checkpoint
(``last.pt``: its ``model`` entry) or a plain state dict with matching parameter names (``best.pt``, or a
user's own ``torch.save(model.state_dict())``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from serkit.errors import ConfigError

__all__ = ["init_from_checkpoint", "read_state_dict"]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameter tensors stored in ``path`` (bundle, trainer checkpoint or plain state dict)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.init_from: {path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 -- torch.load fails in many ways on a foreign file
        raise ConfigError(f"model.init_from: {path}: not a readable torch file ({exc})") from None
    if isinstance(payload, nn.Module):
        payload = payload.state_dict()
    if isinstance(payload, dict) and "state_dict" in payload and isinstance(payload["state_dict"], dict):
        payload = payload["state_dict"]  # a serkit bundle
    elif isinstance(payload, dict) and "model" in payload and isinstance(payload["model"], dict):
        payload = payload["model"]  # a trainer checkpoint (last.pt)
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ConfigError(f"model.init_from: {path}: holds no state dict (a serkit model.pt bundle, a trainer "
                          "checkpoint or a dict of parameter name -> tensor)")
    return dict(payload)


def init_from_checkpoint(model: nn.Module, source: str | Path | dict[str, torch.Tensor], *,
                         prefixes: Sequence[str] | None = None) -> dict[str, Any]:
    """Copy parameters (and buffers) from a checkpoint into ``model``.

    Parameters
    ----------
    model : the freshly built model.
    source : a checkpoint path (see :func:`read_state_dict`) or a state dict.
    prefixes : take only the model's entries whose names start with one of these (e.g. ``["streams.mfcc."]``
        for one stream of a ha2024 model, leaving the rest, such as a classifier for another label set, as
        initialised). None takes every entry of the model.

    Every selected entry of the model must be in the checkpoint with the same shape; otherwise a ConfigError
    lists the missing, mis-shaped and (for a full load) unexpected keys. Returns ``{"loaded": [names]}``.
    """
    state = read_state_dict(source) if not isinstance(source, dict) else source
    own = model.state_dict()
    if prefixes is not None:
        prefixes = list(prefixes)
        if not prefixes:
            raise ConfigError("model.init_prefixes: give at least one prefix, or leave it out to load everything")
        wanted = [k for k in own if any(k.startswith(p) for p in prefixes)]
        if not wanted:
            raise ConfigError(f"model.init_prefixes: {prefixes} match no parameter of the model; its top-level "
                              f"modules are {sorted({k.split('.')[0] for k in own})}")
        unexpected: list[str] = []
    else:
        wanted = list(own)
        unexpected = sorted(set(state) - set(own))
    missing = [k for k in wanted if k not in state]
    misshaped = [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
                 for k in wanted if k in state and state[k].shape != own[k].shape]
    if missing or misshaped or unexpected:
        where = source if not isinstance(source, dict) else "state dict"
        parts = [f"{label}: {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
                 for label, keys in (("missing", missing), ("mis-shaped", misshaped), ("unexpected", unexpected))
                 if keys]
        hint = "" if prefixes is not None else " (init_prefixes takes only some parameters, e.g. one stream)"
        raise ConfigError(f"model.init_from: {where} does not fit the model{hint}; " + "; ".join(parts))
    with torch.no_grad():
        for k in wanted:
            own[k].copy_(state[k].to(own[k].dtype))
    return {"loaded": wanted}
