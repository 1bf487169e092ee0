"""The one place the service obtains its model, loaded once at start-up.

The service uses only ``labels``, ``window_seconds``, ``card``, ``source``, ``predict_batch`` and what the
analysis uses (:mod:`serkit.inference.analysis`); to serve another pipeline object, change this function.
"""

from __future__ import annotations

from serkit.inference.api import EmotionModel, load_model


def load_service_model(spec: str | None, precision: str | None = None) -> EmotionModel:
    """The model the service answers with: ``spec`` is None (serkit's default model), a model.pt or a run folder;
    ``precision`` its encoder's (``--precision``)."""
    return load_model(spec, precision=precision)
