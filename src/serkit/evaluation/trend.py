"""Trend fidelity: how faithfully per-session estimates follow a person's true emotional mix across sessions.

A person's state is followed session by session, so the figure that matters is not a clip's accuracy but whether
the share of negative speech the model reports rises and falls with the true share, at the right level. Sessions
are built from one held-out speaker's labelled clips with a known share of negative clips (and so a known share
of every emotion); each session's shares are estimated from the model's answers on its clips, and compared with
the truth over all the speaker's sessions:

- Spearman's rho between the true and the estimated share (does the estimate go up when the truth does?);
- the mean absolute error of the share (is it at the right level?).

Two estimators of a session's share of an emotion: ``mean`` (the mean probability of that emotion over the
session's clips) and ``argmax`` (the share of clips whose most probable emotion it is); the negative share is the
sum over :data:`~serkit.inference.analysis.NEGATIVE_LABELS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from serkit.inference.analysis import NEGATIVE_LABELS

__all__ = ["ESTIMATORS", "Session", "build_sessions", "estimate_shares", "fidelity", "session_truth"]

ESTIMATORS: tuple[str, ...] = ("mean", "argmax")


@dataclass
class Session:
    """A session of one speaker: positions of its clips in the speaker's clip list, and its true negative share."""

    clips: np.ndarray
    negative_share: float


def build_sessions(labels: Sequence[str], *, shares: Sequence[float], per_share: int, size: int,
                   rng: np.random.Generator) -> list[Session]:
    """Sessions of ``size`` clips with ``round(share * size)`` negative clips, ``per_share`` sessions per share.

    The negative and the other clips are each drawn without replacement while the speaker has enough of them
    (with replacement beyond that: a speaker with 12 negative clips still gets all-negative sessions of 20).
    Returns an empty list when the speaker has no negative or no other clip.
    """
    labels = np.asarray(labels).astype(str)
    negative = np.flatnonzero(np.isin(labels, NEGATIVE_LABELS))
    other = np.flatnonzero(~np.isin(labels, NEGATIVE_LABELS))
    if not len(negative) or not len(other):
        return []
    sessions = []
    for share in shares:
        n_neg = int(round(share * size))
        for _ in range(per_share):
            picked = [_draw(negative, n_neg, rng), _draw(other, size - n_neg, rng)]
            sessions.append(Session(np.concatenate(picked), n_neg / size))
    return sessions


def _draw(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(pool, size=n, replace=n > len(pool)) if n else np.zeros(0, dtype=int)


def session_truth(labels: Sequence[str], sessions: Sequence[Session], classes: Sequence[str]) -> np.ndarray:
    """(sessions, classes) true share of each class in each session."""
    labels = np.asarray(labels).astype(str)
    return np.stack([[np.mean(labels[s.clips] == c) for c in classes] for s in sessions])


def estimate_shares(proba: np.ndarray, sessions: Sequence[Session], estimator: str) -> np.ndarray:
    """(sessions, classes) estimated share of each class from the clips' probabilities ``proba`` (clips, classes)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    proba = np.asarray(proba)
    if estimator == "argmax":
        proba = np.eye(proba.shape[1])[proba.argmax(1)]
    return np.stack([proba[s.clips].mean(axis=0) for s in sessions])


def negative_of(shares: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """(sessions,) negative share: the sum of the negative classes' shares."""
    cols = [j for j, c in enumerate(classes) if c in NEGATIVE_LABELS]
    return np.asarray(shares)[:, cols].sum(axis=1)


def fidelity(true: np.ndarray, estimated: np.ndarray) -> dict[str, float | None]:
    """Spearman's rho (None when the truth or the estimate does not vary) and the mean absolute error."""
    true, estimated = np.asarray(true, dtype=float), np.asarray(estimated, dtype=float)
    mae = float(np.mean(np.abs(true - estimated)))
    if np.ptp(true) == 0 or np.ptp(estimated) == 0:
        return {"rho": None, "mae": mae}
    return {"rho": float(spearmanr(true, estimated).statistic), "mae": mae}
