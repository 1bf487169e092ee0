"""Running an exported serkit ONNX graph with onnxruntime, and reading an ``.onnx`` file as a model bundle.

Export itself (torch -> ONNX) is :mod:`serkit.inference.export`; this module needs neither torch's exporter nor
the ``onnx`` package, only onnxruntime when a graph is opened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from serkit.errors import ConfigError
from serkit.models.bundle import ModelBundle

__all__ = ["ONNX_FORMAT", "OUTPUT_NAME", "OnnxClassifier", "load_onnx_bundle"]

ONNX_FORMAT = "serkit-onnx/1"
OUTPUT_NAME = "probabilities"


class OnnxClassifier:
    """Class probabilities from an exported serkit graph through onnxruntime.

    Parameters
    ----------
    model : an ``.onnx`` path or the serialised bytes.
    num_threads : onnxruntime intra-op threads (None: onnxruntime's default, one per core).
    optimization : onnxruntime graph optimisation level: ``"all"`` (default), ``"extended"``, ``"basic"``,
        ``"none"``.

    ``predict_proba`` takes the features the torch model takes (normalised): one array (N, ...), a dict
    stream -> array, or one positional array per input in the graph's order.
    """

    def __init__(self, model: str | Path | bytes, *, num_threads: int | None = None,
                 optimization: Literal["all", "extended", "basic", "none"] = "all"):
        import onnxruntime as ort

        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if optimization not in levels:
            raise ConfigError(f"optimization: expected one of {', '.join(levels)}, got {optimization!r}")
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[optimization]
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise ConfigError(f"{model}: ONNX file not found")
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own unexported error types
            where = "ONNX model" if isinstance(model, bytes) else str(model)
            raise ConfigError(f"{where}: onnxruntime cannot load it ({exc})") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, Any] = {k[len("serkit."):]: json.loads(v) for k, v in raw.items()
                                         if k.startswith("serkit.")}
        self.labels: list[str] | None = self.metadata.get("labels")

    def _feeds(self, arrays: tuple[Any, ...]) -> dict[str, np.ndarray]:
        if len(arrays) == 1 and isinstance(arrays[0], Mapping):
            streams = arrays[0]
            missing = [n for n in self.input_names if n not in streams]
            if missing:
                raise ConfigError(f"features: stream(s) {missing} missing; have {list(streams)}")
            arrays = tuple(streams[n] for n in self.input_names)
        if len(arrays) != len(self.input_names):
            raise ConfigError(f"features: the graph takes {len(self.input_names)} input(s) {self.input_names}, "
                              f"got {len(arrays)}")
        feeds = {n: np.ascontiguousarray(np.asarray(a, dtype=np.float32)) for n, a in zip(self.input_names, arrays)}
        counts = {len(a) for a in feeds.values()}
        if len(counts) != 1:
            raise ConfigError(f"features: inputs differ in their number of items: "
                              f"{ {n: len(a) for n, a in feeds.items()} }")
        return feeds

    def predict_proba(self, *X: Any, batch_size: int = 256) -> np.ndarray:
        """Softmax outputs (N, C) as float32, computed in batches of ``batch_size`` items."""
        feeds = self._feeds(X)
        n = len(next(iter(feeds.values())))
        outs = [self.session.run([OUTPUT_NAME], {k: v[i : i + batch_size] for k, v in feeds.items()})[0]
                for i in range(0, n, batch_size)]
        if not outs:
            return np.zeros((0, len(self.labels or [])), dtype=np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    __call__ = predict_proba

    # The learner interface (serkit.models.learner.Learner): an ONNX graph predicts only.
    kind = "onnx"

    @property
    def model(self) -> OnnxClassifier:
        return self

    @property
    def module(self) -> None:
        return None

    def fit(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ConfigError("an exported ONNX model cannot be trained; train the serkit model and export it again")

    def validation_proba(self, X_val: Any) -> np.ndarray:
        raise ConfigError("an exported ONNX model cannot be calibrated; calibrate the serkit model and export it again")

    def state(self) -> dict[str, Any]:
        raise ConfigError("an exported ONNX model is already a file; it is not saved as a serkit model.pt")


def load_onnx_bundle(path: str | Path) -> ModelBundle:
    """An ``.onnx`` file written by :func:`export_onnx` as a :class:`ModelBundle` whose model is an
    :class:`OnnxClassifier`: what ``serkit.load_model("model.onnx")`` and ``predict --model model.onnx`` use.

    The recipe (audio, frontend, pooling, segments), labels and normaliser statistics come from the file's
    metadata, so features are computed exactly as for the torch model.

    Raises
    ------
    ConfigError
        for a missing or unreadable file, or an ONNX model serkit did not export (no serkit metadata).
    """
    classifier = OnnxClassifier(path)
    meta = classifier.metadata
    missing = [key for key in ("recipe", "labels", "inputs") if key not in meta]
    if meta.get("format") != ONNX_FORMAT or missing:
        raise ConfigError(f"{path}: not an ONNX model exported by serkit (its metadata lacks "
                          f"{', '.join(missing) or 'the format ' + ONNX_FORMAT}); export it with `serkit export`")
    inputs = {str(name): tuple(int(n) for n in shape) for name, shape in meta["inputs"].items()}
    shape = inputs["features"] if list(inputs) == ["features"] else inputs
    return ModelBundle(meta["recipe"], list(meta["labels"]), shape, classifier, meta.get("normalizer"),
                       meta.get("info") or {})
