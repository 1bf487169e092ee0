"""Inference with trained serkit models: the Python API, long-recording analysis, streaming."""

from serkit.inference.api import EmotionModel, load_model
from serkit.inference.bundles import find_bundles
from serkit.inference.predictor import Predictions, Predictor

__all__ = ["EmotionModel", "Predictions", "Predictor", "find_bundles", "load_model"]
