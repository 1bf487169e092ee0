"""Inference with trained serkit models: the Python API, long-recording analysis, streaming."""

from serkit.inference.api import EmotionModel, load_model
from serkit.inference.bundles import find_bundles
from serkit.inference.pipeline import EmotionPipeline, Predictions

__all__ = ["EmotionModel", "EmotionPipeline", "Predictions", "find_bundles", "load_model"]
