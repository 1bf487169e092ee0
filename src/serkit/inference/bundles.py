"""Model files: find the ``model.pt`` / ``.onnx`` files of a path or run folder, and read one as a bundle."""

from __future__ import annotations

from pathlib import Path

from serkit.errors import ConfigError
from serkit.inference.onnx_runtime import load_onnx_bundle
from serkit.models.bundle import ModelBundle

__all__ = ["find_bundles", "load_bundle"]


def find_bundles(model: str | Path) -> list[Path]:
    """A model file (``.pt``, or ``.onnx`` from ``serkit export``), or every ``folds/*/model.pt`` of a run folder
    (or the ``*.pt`` / ``*.onnx`` files of a folder, e.g. the ``onnx/`` folder ``serkit export`` writes for a run)."""
    path = Path(model)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob("folds/*/model.pt")) or sorted(path.glob("*.pt")) or sorted(path.glob("*.onnx"))
        if found:
            return found
        raise ConfigError(f"{path}: no model.pt under folds/ and no *.pt or *.onnx file (is this a serkit run "
                          "folder?)")
    raise ConfigError(f"{path}: no such model file or run folder")


def load_bundle(path: str | Path, *, device: str = "cpu") -> ModelBundle:
    """A ``model.pt`` bundle, or an exported ``.onnx`` file as a bundle that runs with onnxruntime."""
    if Path(path).suffix.lower() == ".onnx":
        try:
            return load_onnx_bundle(path)
        except ImportError as exc:
            raise ConfigError(f"{path}: an ONNX model needs the onnxruntime package ({exc})") from None
    return ModelBundle.load(path, device=device)
