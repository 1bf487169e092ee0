"""serkit: speech emotion recognition toolkit."""

from serkit._version import __version__


def load_model(name_or_path=None, *, backend: str = "torch", device: str = "cpu", vad: str = "auto",
               precision: str | None = None):
    """Load a model for prediction (None or "default": serkit's default model); see
    :func:`serkit.inference.api.load_model`. Imported lazily so that ``import serkit`` stays light."""
    from serkit.inference.api import load_model as _load_model

    return _load_model(name_or_path, backend=backend, device=device, vad=vad, precision=precision)


__all__ = ["__version__", "load_model"]
