"""Class and corpus balancing of a training split by weights or resampling (see ``RebalanceConfig``).

Unlike ``balance`` (ha2024's shifted copies of waveforms, classes only), this works on rows of the
utterance table, so it also balances corpora of a pool and applies to cached features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from serkit.augment.config import RebalanceConfig
from serkit.errors import ConfigError

__all__ = ["balance_weights", "rebalance_rows", "systematic_resample"]


def balance_weights(
    groups: Mapping[str, Sequence[object]], *, strength: float = 1.0, max_iter: int = 1000, tol: float = 1e-8
) -> np.ndarray:
    """Per-item weights (mean 1) under which every value of every grouping has the same total weight.

    One grouping gives inverse-frequency weights. Several are fitted together by iterative proportional fitting
    (raking), started from equal weight for every cell (combination of values) that occurs: every margin
    becomes flat while the cells stay as even as the margins allow. Missing cells (a corpus without a class)
    stay empty.

    Parameters
    ----------
    groups : grouping name -> one value per item (e.g. ``{"corpus": ..., "label": ...}``).
    strength : the balanced weights are raised to this power: 1 balances fully, 0 gives all ones.
    max_iter, tol : raking stops when every margin total is within ``tol`` (relative) of its target.

    Raises
    ------
    ConfigError
        For no grouping, groupings of different lengths, or margins that cannot all be made equal.
    """
    if not groups:
        raise ConfigError("balance_weights: give at least one grouping")
    codes = {}
    for name, values in groups.items():
        codes[name] = pd.factorize(pd.Series(list(values), dtype=object).astype(str), sort=True)[0]
    lengths = {len(c) for c in codes.values()}
    if len(lengths) != 1:
        raise ConfigError(f"balance_weights: groupings have different lengths {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        return np.ones(0)
    cell = np.zeros(n, dtype=np.int64)
    for code in codes.values():  # one integer per combination of values
        cell = cell * (int(code.max()) + 1) + code
    cell = np.unique(cell, return_inverse=True)[1]
    weights = 1.0 / np.bincount(cell)[cell]  # every cell that occurs weighs the same to start with
    for _ in range(max_iter):
        worst = 0.0
        for code in codes.values():
            totals = np.bincount(code, weights=weights)
            present = np.bincount(code) > 0
            target = totals[present].sum() / present.sum()
            ratio = np.where(present, target / np.where(totals > 0, totals, 1.0), 1.0)
            worst = max(worst, float(np.max(np.abs(ratio[present] - 1.0))))
            weights = weights * ratio[code]
        if worst < tol:
            break
    else:
        raise ConfigError(f"balance_weights: cannot make {', '.join(groups)} all equal at once "
                          f"(still {worst:.2g} off after {max_iter} rounds); balance fewer columns")
    weights = weights / weights.mean()
    return weights**strength / np.mean(weights**strength)


def systematic_resample(weights: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions drawn in proportion to ``weights``: item i appears floor(e_i) or ceil(e_i) times, where
    e_i = size * w_i / sum(w), and ``size`` positions in all (sorted)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or not weights.sum() > 0:
        raise ConfigError("systematic_resample: weights must be a non-empty 1-D array of >= 0 with a positive sum")
    edges = np.cumsum(weights) / weights.sum()
    edges[-1] = 1.0
    points = (rng.uniform() + np.arange(size)) / size
    return np.searchsorted(edges, points, side="right").astype(np.int64)


def rebalance_rows(rows: np.ndarray, table: pd.DataFrame, cfg: RebalanceConfig, seed: int) -> np.ndarray:
    """A resampled copy of the training rows ``rows`` (positions in ``table``), balanced over ``cfg.by``.

    Rows may repeat; the result is sorted. Only ``rows`` are looked at, so validation and test never shape it.

    Raises
    ------
    ConfigError
        When a ``by`` column is not in the table (naming the columns there).
    """
    missing = [c for c in cfg.by if c not in table.columns]
    if missing:
        raise ConfigError(f"augment.rebalance.by: column(s) {missing} not in the utterance table "
                          f"(columns: {list(table.columns)})")
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return rows
    part = table.iloc[rows]
    weights = balance_weights({c: part[c].to_numpy() for c in cfg.by}, strength=cfg.strength)
    picked = systematic_resample(weights, cfg.size or rows.size, np.random.default_rng([int(seed), 7]))
    return rows[picked]
