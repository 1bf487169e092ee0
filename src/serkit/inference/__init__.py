"""Inference with trained serkit models."""

from serkit.inference.predictor import Predictions, Predictor, find_bundles

__all__ = ["Predictions", "Predictor", "find_bundles"]
