"""A person's baseline: the model adapted to their own other sessions, whose result stands beside the strict one.

Every analysed session keeps its windows' pooled features (``features.npz`` in its results folder, float16; never
served by the API, deleted with the session). A session's baseline is the model adapted
(:meth:`serkit.inference.api.EmotionModel.adapted_to_features`, serkit's default method) to the windows of the same
person's *other* analysed sessions, never its own: the figure docs/benchmarks/trend.md measures. It is used once
that material passes the same rules as ``adapt()`` (enough speech; varied enough for the method); until then the
session has only its strict result, and the reason is given. As sessions accumulate every baseline is rebuilt
(the person's trend folder, which holds them, is keyed by the set of analysed sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serkit.inference.api import ADAPT_PIECE_SECONDS, EmotionModel
from serkit.utils import atomic_write_bytes

#: The windows' features of an analysed session, beside its timeline.
FEATURES_FILE = "features.npz"

#: A baseline is estimated from at most this many windows (spread evenly over the other sessions): enough for its
#: statistics, and a bound on the memory a person with hundreds of sessions costs.
MAX_BASELINE_WINDOWS = 4000


def save_features(features: np.ndarray | None, folder: Path) -> Path | None:
    """The session's window features into ``folder`` (float16: the baseline's statistics need no more)."""
    if features is None:
        return None
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, features=np.asarray(features, dtype=np.float16))
    return atomic_write_bytes(folder / FEATURES_FILE, buf.getvalue())


def load_features(results_dir: Path, sid: str) -> np.ndarray | None:
    """A session's window features (float32), or None when it has none (analysed before baselines existed, or by
    a model that cannot be adapted) or they cannot be read."""
    path = results_dir / sid / FEATURES_FILE
    try:
        with np.load(path) as data:
            return data["features"].astype(np.float32)
    except (OSError, ValueError, KeyError):
        return None


@dataclass
class Baseline:
    """One session's baseline: the adapted model (None when not used), what it was adapted to, and why it is not
    used (the adaptation's warnings, or that there is no other material yet)."""

    session_id: str
    model: EmotionModel | None
    label: str | None
    other_sessions: int
    seconds: float
    reasons: list[str]

    def describe(self) -> dict[str, Any]:
        return {"used": self.model is not None, "label": self.label, "other_sessions": self.other_sessions,
                "speech_s": round(self.seconds, 1), "why_not": self.reasons,
                "method": self.model.adaptation.config.describe() if self.model is not None else None}


def session_baseline(model: EmotionModel, sid: str, sessions: list[dict[str, Any]],
                     features: dict[str, np.ndarray | None]) -> Baseline:
    """The baseline of session ``sid`` from the person's other ``sessions`` (rows with ``id`` and ``speech_s``)
    whose ``features`` are known and are this model's (others are left out, as sessions without features)."""
    if not model.adaptable:
        return Baseline(sid, None, None, 0, 0.0, ["this model cannot be adapted (it does not standardise its "
                                                  "features)"])
    features = {k: _matching(v, model) for k, v in features.items()}
    others = [s for s in sessions if s["id"] != sid and features.get(s["id"]) is not None]
    old = [s for s in sessions if s["id"] != sid and features.get(s["id"]) is None]
    if not others:
        why = "no other analysed session of this person yet" if not old else (
            f"{len(old)} other session(s), analysed before personal baselines were kept (no stored features); "
            "upload new sessions to build one")
        return Baseline(sid, None, None, 0, 0.0, [why])
    X = _spread([features[s["id"]] for s in others], MAX_BASELINE_WINDOWS)
    seconds = float(sum(s.get("speech_s") or 0.0 for s in others))
    label = f"adapted to this person's {len(others)} other session(s)"
    adapted = model.adapted_to_features(X, seconds=seconds, pieces=int(seconds // ADAPT_PIECE_SECONDS), label=label,
                                        inputs=len(others))
    reasons = list(adapted.adaptation.warnings)
    return Baseline(sid, None if reasons else adapted, label, len(others), seconds, reasons)


def _spread(parts: list[np.ndarray], limit: int) -> np.ndarray:
    """The rows of ``parts`` together, thinned evenly to at most ``limit``."""
    X = np.concatenate(parts)
    if len(X) <= limit:
        return X
    return X[np.linspace(0, len(X) - 1, limit).round().astype(int)]


def person_baselines(sessions: list[dict[str, Any]], model: EmotionModel,
                     features: dict[str, np.ndarray | None]) -> dict[str, Baseline]:
    """Every analysed session's baseline (``sessions``: the person's analysed sessions, each with ``id`` and
    ``speech_s``; ``features``: each session's window features, the person's windows only when a voice profile
    says which they are)."""
    return {s["id"]: session_baseline(model, s["id"], sessions, features) for s in sessions}


def _matching(features: np.ndarray | None, model: EmotionModel) -> np.ndarray | None:
    """Features only when they are this model's (a model of another feature size would reject them)."""
    if features is None:
        return None
    mean = model.pipeline.members[0].normalizer.mean
    return features if mean is not None and features.shape[1:] == mean.shape else None
