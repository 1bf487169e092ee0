"""ONNX export of serkit's torch models (running the exported graphs is :mod:`serkit.inference.onnx_runtime`).

What the exported graph holds
-----------------------------
The network and a final softmax: input = the *normalised* features (one input named ``features``, or one
input per stream, named after the streams, for a multi-input model), output ``probabilities`` (N, C). The
feature frontend, pooling and normaliser stay outside the graph; everything needed to recompute them (labels,
the recipe's audio / frontend / pooling / segment settings, the normaliser statistics) is stored in the
file's ``metadata_props`` as JSON, so one ``.onnx`` file is self-contained.

Why not the frontend in the graph too: it was tried. The legacy (TorchScript) exporter cannot express the
frontend's framing (``unfold`` on a dynamic length); the dynamo exporter can (through ONNX ``DFT``/``STFT``),
but onnxruntime 1.31 then needs 17-26 ms for the MFCCs of one 3 s clip against 3.3 ms for serkit's torch
frontend on one thread (measured on the development machine, see ``docs/export.md``). Features are therefore
computed by :mod:`serkit.features` on both backends.

Exporter: torch's TorchScript-based exporter (``dynamo=False``), which exports every zoo model 3-30x faster
than the dynamo exporter with the same outputs (both checked); the dynamo exporter is tried when it fails. Classical
(scikit-learn) models are not exported: skl2onnx is not a serkit dependency, and their eGeMAPS features
come from openSMILE, which has no ONNX form either.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from serkit.errors import ConfigError
from serkit.inference.bundles import find_bundles
from serkit.inference.onnx_runtime import ONNX_FORMAT, OUTPUT_NAME, OnnxClassifier
from serkit.models.bundle import ModelBundle
from serkit.models.registry import list_models, model_spec
from serkit.utils import atomic_write_bytes

__all__ = [
    "ONNX_NOT_EXPRESSIBLE",
    "export_module_onnx",
    "export_onnx",
    "onnx_classifier_for_bundle",
    "onnx_support",
    "onnx_unsupported_reason",
]

DEFAULT_OPSET = 17

# Registered torch models that no exporter available here can express: name -> why. tests/test_export.py
# checks that this is exactly the set of torch models whose export fails.
ONNX_NOT_EXPRESSIBLE: dict[str, str] = {}

_SKLEARN_REASON = ("a scikit-learn model: serkit does not depend on skl2onnx, and its features (eGeMAPS, ComParE) "
                   "come from openSMILE, which ONNX cannot express; use the PyTorch backend")

Exporter = Literal["auto", "torchscript", "dynamo"]


def onnx_unsupported_reason(name: str) -> str | None:
    """Why the registered model ``name`` cannot be exported to ONNX, or None when it can."""
    spec = model_spec(name)
    if spec.kind != "torch":
        return _SKLEARN_REASON
    return ONNX_NOT_EXPRESSIBLE.get(name)


def onnx_support() -> dict[str, str | None]:
    """Every registered model -> None (exportable) or the reason it is not."""
    return {name: onnx_unsupported_reason(name) for name in list_models()}


# ------------------------------------------------------------------------------------------------ export


class _WithSoftmax(nn.Module):
    """The classifier followed by a softmax over classes, so the graph returns probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(*features), dim=1)


def _input_spec(model: nn.Module, input_shape: Sequence[int] | Mapping[str, Sequence[int]]
                ) -> tuple[list[str], list[tuple[int, ...]]]:
    """Graph input names and per-item shapes, in the order the model is called with."""
    if isinstance(input_shape, Mapping):
        order = list(getattr(model, "input_streams", None) or input_shape)
        missing = [s for s in order if s not in input_shape]
        if missing:
            raise ConfigError(f"input_shape: stream(s) {missing} of the model have no shape (have {list(input_shape)})")
        return order, [tuple(int(n) for n in input_shape[s]) for s in order]
    return ["features"], [tuple(int(n) for n in input_shape)]


def _export_bytes(model: nn.Module, names: list[str], shapes: list[tuple[int, ...]], *, opset: int,
                  dynamic_batch: bool, exporter: Exporter) -> bytes:
    wrapped = _WithSoftmax(model).eval()
    dummy = tuple(torch.randn(2, *s) for s in shapes)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.TransformerEncoder's eval-mode fast path is one fused kernel with no ONNX form; the ordinary path has.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        return _try_exporters(wrapped, dummy, names, opset=opset, dynamic_batch=dynamic_batch, exporter=exporter)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _try_exporters(wrapped: nn.Module, dummy: tuple[torch.Tensor, ...], names: list[str], *, opset: int,
                   dynamic_batch: bool, exporter: Exporter) -> bytes:
    errors: list[str] = []
    for kind in (("torchscript", "dynamo") if exporter == "auto" else (exporter,)):
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings about Python values recorded as constants
                if kind == "torchscript":
                    buffer = io.BytesIO()
                    axes = {n: {0: "batch"} for n in [*names, OUTPUT_NAME]} if dynamic_batch else None
                    torch.onnx.export(wrapped, dummy, buffer, input_names=names, output_names=[OUTPUT_NAME],
                                      opset_version=opset, dynamic_axes=axes, dynamo=False)
                    return buffer.getvalue()
                batch = torch.export.Dim("batch") if dynamic_batch else None
                program = torch.onnx.export(
                    wrapped, dummy, input_names=names, output_names=[OUTPUT_NAME], opset_version=max(opset, 18),
                    # forward(*features): the varargs tuple is one argument, so the specs are nested once
                    dynamic_shapes=(tuple({0: batch} for _ in names),) if dynamic_batch else None, dynamo=True,
                    verbose=False)
                return program.model_proto.SerializeToString()
        except Exception as exc:  # noqa: BLE001 - the exporters raise many unrelated types
            errors.append(f"{kind} exporter: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise ConfigError("ONNX export failed; " + "; ".join(errors))


def _json_ready(value: Any) -> Any:
    """Tensors and arrays as nested lists, recursively, for JSON metadata."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _with_metadata(model_bytes: bytes, metadata: Mapping[str, Any]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model_bytes)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"serkit.{key}", json.dumps(_json_ready(value))
    proto.producer_name = "serkit"
    return proto.SerializeToString()


def _quantized(model_bytes: bytes) -> bytes:
    """Dynamic int8 quantisation of the weights of MatMul/Gemm/LSTM (activations quantised at run time)."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        # Conv stays float: onnxruntime's ConvInteger made serkit_cnn ~3x slower (2.5 ms against 0.86 ms per 4 s
        # clip on one thread); with int8 dense weights only it took 0.90 ms.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # its root-logger advice to run shape pre-processing first
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "LSTM"])
        finally:
            logging.disable(previous)
        return dst.read_bytes()


def export_module_onnx(
    model: nn.Module,
    input_shape: Sequence[int] | Mapping[str, Sequence[int]],
    out_path: str | Path | None = None,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    quantize: bool = False,
    metadata: Mapping[str, Any] | None = None,
    exporter: Exporter = "auto",
) -> bytes:
    """Export a torch classifier (any ``nn.Module`` returning logits) to ONNX, with a softmax appended.

    Parameters
    ----------
    model : the network, called ``model(x)`` or, for a multi-input model, ``model(*streams)``.
    input_shape : one item's feature shape (no batch axis), or stream name -> shape for a multi-input model
        (its ``input_streams`` attribute gives the call order).
    out_path : where to write the file (atomically); None writes nothing and only returns the bytes.
    opset : ONNX opset (default 17; the dynamo exporter needs at least 18).
    dynamic_batch : a free batch axis (default); otherwise the graph takes batches of exactly 2 items.
    quantize : dynamic int8 quantisation of MatMul/Gemm/LSTM weights (onnxruntime.quantization).
    metadata : written as ``metadata_props`` ``serkit.<key>`` = JSON value.
    exporter : ``"torchscript"``, ``"dynamo"``, or ``"auto"`` (TorchScript, then dynamo if that fails).

    Returns
    -------
    bytes
        The serialised ONNX model.
    """
    names, shapes = _input_spec(model, input_shape)
    was_training = model.training
    model.eval()
    try:
        data = _export_bytes(model, names, shapes, opset=DEFAULT_OPSET if opset is None else int(opset),
                             dynamic_batch=dynamic_batch, exporter=exporter)
    finally:
        model.train(was_training)
    if quantize:
        data = _quantized(data)
    data = _with_metadata(data, {"format": ONNX_FORMAT, "inputs": dict(zip(names, shapes)),
                                 "quantized": bool(quantize), **(metadata or {})})
    if out_path is not None:
        atomic_write_bytes(out_path, data)
    return data


def _load_bundle(model_or_bundle_path: ModelBundle | str | Path) -> ModelBundle:
    if isinstance(model_or_bundle_path, ModelBundle):
        return model_or_bundle_path
    return ModelBundle.load(model_or_bundle_path)


def _bundle_metadata(bundle: ModelBundle) -> dict[str, Any]:
    recipe = bundle.recipe
    return {
        "model": bundle.model_name,
        "labels": list(bundle.labels),
        "audio": recipe.get("audio"),
        "frontend": recipe.get("frontend"),
        "frontends": recipe.get("frontends"),
        "pooling": recipe.get("pooling", "none"),
        "segments": recipe.get("segments"),
        "normalizer": bundle.normalizer,
        "recipe": recipe,
        "info": bundle.info,  # the model card, quoted by reports
    }


def _exportable_module(bundle: ModelBundle) -> nn.Module:
    """The bundle's torch module, or a ConfigError saying why it cannot be exported."""
    module = bundle.learner.module
    reason = _SKLEARN_REASON if module is None else ONNX_NOT_EXPRESSIBLE.get(bundle.model_name)
    if reason is not None:
        raise ConfigError(f"model {bundle.model_name!r} cannot be exported to ONNX: {reason}")
    return module


def export_onnx(
    model_or_bundle_path: ModelBundle | str | Path,
    out_path: str | Path,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    quantize: bool = False,
) -> Path:
    """Export a trained serkit model (a bundle, or the path of a ``model.pt``) to one ONNX file.

    The graph maps normalised features to class probabilities; labels, audio/frontend settings and the
    normaliser statistics go into ``metadata_props`` (see the module docstring). A model that ONNX cannot
    express raises a :class:`~serkit.errors.ConfigError` giving the reason (:func:`onnx_support` lists them).

    Returns
    -------
    Path
        ``out_path``.
    """
    bundle = _load_bundle(model_or_bundle_path)
    module = _exportable_module(bundle)
    export_module_onnx(module, bundle.input_shape, out_path, opset=opset, dynamic_batch=dynamic_batch,
                       quantize=quantize, metadata=_bundle_metadata(bundle))
    return Path(out_path)


# --------------------------------------------------------------------------------------------- inference


def onnx_classifier_for_bundle(bundle: ModelBundle, *, quantize: bool = False, num_threads: int | None = None,
                               optimization: Literal["all", "extended", "basic", "none"] = "all") -> OnnxClassifier:
    """Export ``bundle``'s network in memory and open it with onnxruntime (nothing is written to disk).

    A bundle read from an ``.onnx`` file is already one and is returned as it is. Raises a
    :class:`~serkit.errors.ConfigError` for a model ONNX cannot express (see :func:`onnx_support`).
    """
    if isinstance(bundle.learner, OnnxClassifier):
        return bundle.learner
    module = _exportable_module(bundle)
    data = export_module_onnx(module, bundle.input_shape, None, quantize=quantize,
                              metadata=_bundle_metadata(bundle))
    return OnnxClassifier(data, num_threads=num_threads, optimization=optimization)


# ------------------------------------------------------------------------------------------- files, CLI


def export_onnx_files(model: str | Path, out: str | Path | None = None, *, opset: int | None = None,
                      quantize: bool = False) -> list[Path]:
    """Export a ``model.pt``, or every fold model of a run folder, to ONNX files.

    Parameters
    ----------
    model : a bundle file, or a run folder (its ``folds/*/model.pt``, one ONNX file per fold).
    out : for a bundle, the output file (default: the bundle's path with ``.onnx``; an existing folder gets
        ``<bundle stem>.onnx`` inside); for a run folder, the output folder (default ``<run>/onnx``), which
        receives ``<fold>.onnx`` per fold.
    opset, quantize : as in :func:`export_onnx`.

    Returns
    -------
    list[Path]
        The files written.
    """
    model = Path(model)
    bundles = find_bundles(model)
    if model.is_file():
        target = Path(out) if out is not None else model.with_suffix(".onnx")
        if target.is_dir():
            target = target / f"{model.stem}.onnx"
        return [export_onnx(model, target, opset=opset, quantize=quantize)]
    folder = Path(out) if out is not None else model / "onnx"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: a run folder exports one file per fold; --out must be a folder")
    # fold folders are named by fold; a flat folder of *.pt files keeps the file stems
    names = [b.parent.name if b.name == "model.pt" else b.stem for b in bundles]
    return [export_onnx(b, folder / f"{name}.onnx", opset=opset, quantize=quantize) for b, name in zip(bundles, names)]
