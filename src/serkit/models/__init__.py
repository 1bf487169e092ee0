"""Models by name: ``create_model(name, num_classes=..., input_shape=..., **options)``."""

from serkit.models.registry import ModelSpec, create_model, list_models, model_spec, register_model

__all__ = ["ModelSpec", "create_model", "list_models", "model_spec", "register_model"]
