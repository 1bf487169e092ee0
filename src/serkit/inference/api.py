"""The Python API for using a trained model: ``serkit.load_model(...)`` -> :class:`EmotionModel`.

``predict`` / ``predict_proba`` take a path, a list of paths, a waveform array with its sample rate, or a list
of arrays. Inputs are read and prepared outside a lock and classified under it, so one model object can serve
requests from several threads.

Every input is judged as a whole. A model without a fixed clip length (the default model: a pretrained encoder
that takes any length) classifies an input of up to :data:`WHOLE_INPUT_SECONDS` at once; a model with a fixed
clip (``cnn``) an input whose audio (after the recipe's silence trimming) fits in the clip, padded as in training.
A longer input is cut into windows (the clip's length, or :data:`FALLBACK_WINDOW_SECONDS`) over its speech (the
voice activity detection and windows of ``serkit analyze``), whose probabilities are averaged, each weighted by
the stretch of speech it stands for; the windows are listed in the result.
An input with less than :data:`MIN_SPEECH_SECONDS` of audio (or, for fixed-clip models, of speech) gets no label:
it is a failure ("too short: 0.2 s, needs 0.5 s").
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from serkit.audio import SILENCE_PEAK_DBFS, fix_length, read_audio
from serkit.audio.config import prepare_signal
from serkit.errors import AudioError, ConfigError
from serkit.features.adaptation import AdaptationConfig, AdaptationFit, VoiceDistance, voice_distance
from serkit.features.normalization import FeatureNormalizer
from serkit.inference.pipeline import ADAPTATION, EmotionPipeline, Predictions
from serkit.inference.stream import AnalysisConfig, StreamAnalyzer, window_cells

AudioInput = str | os.PathLike | np.ndarray

#: The models shipped inside the package, by name: ``default`` (the Whisper encoder + calibrated head, see
#: docs/model_card.md) and ``cnn`` (the previous default, a compact CNN on log-mel: about 17x faster, less accurate
#: on unheard speech; docs/model_card_cnn.md).
SHIPPED_MODELS: dict[str, str] = {"default": "pretrained/default.pt", "cnn": "pretrained/cnn.pt"}

#: The encoder precision of the shipped models (``load_model(precision=None)``); ``"float32"`` is the option
#: (docs/benchmarks/encoder.md measures both).
DEFAULT_PRECISION = "float32"

#: Window length (s) used by the analysis when a model has no fixed clip duration (e.g. eGeMAPS models).
FALLBACK_WINDOW_SECONDS = 3.0

#: A model without a fixed clip judges an input up to this long whole (the acted clips it was trained on are
#: 1-10 s); a longer one is a recording, judged by windows over its speech like ``serkit analyze``.
WHOLE_INPUT_SECONDS = 30.0

#: Less audio, or less detected speech, than this (seconds) gets no label from predict or analyze: too little
#: to judge an emotion by (the shortest training clips of the shipped corpora are about 1 s).
MIN_SPEECH_SECONDS = 0.5


#: Adaptation (``EmotionModel.adapt``): recordings are cut into pieces of this many seconds; a set of fewer pieces
#: or less audio than below is too small for its statistics to be trusted, and one where a single emotion takes
#: more than ADAPT_MAX_SHARE of the pieces is too uniform (normalising by it would pull that emotion toward the
#: middle: a person who was sad in every recording would come out less sad). Both are warned about.
ADAPT_PIECE_SECONDS = 3.0
ADAPT_MIN_PIECES = 20
ADAPT_MIN_SECONDS = 60.0
ADAPT_MAX_SHARE = 0.6
# pieces whose peak is this far below their recording's peak are pauses, not speech
_ADAPT_QUIET_DB = 30.0


#: A calm reading (``adapt(..., neutral=True)``) needs less: a few sentences.
ENROL_MIN_PIECES = 4
ENROL_MIN_SECONDS = 12.0

#: How a calm reading adapts a model (``adapt(..., neutral=True)``): chosen, like the default method, on the
#: training corpora's validation speakers with calm readings of 5 neutral clips (docs/benchmarks/adaptation.md;
#: putting the reading where the training data's neutral clips were, method ``neutral``, did worse there).
NEUTRAL_ENROLMENT = AdaptationConfig(method="centre", shrink=20)

#: Configurations measured to survive lopsided material (80 % neutral, one or two emotions: at most 2 UA points
#: below strict on the training corpora's validation speakers, docs/benchmarks/adaptation.md), so a set that
#: sounds mostly like one emotion is no reason to warn; any other configuration is warned about it.
ADAPT_LOPSIDED_SAFE: tuple[AdaptationConfig, ...] = (ADAPTATION, NEUTRAL_ENROLMENT)


@dataclass
class Adaptation:
    """What a model was adapted to: inputs, pieces and seconds of audio, the emotions the unadapted model heard in
    the pieces (their shares), the warnings (empty when the set looks trustworthy), how it adapted and what each
    of its models estimated."""

    inputs: int
    pieces: int
    seconds: float
    label_share: dict[str, float]
    warnings: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)
    config: AdaptationConfig = ADAPTATION
    fits: list[AdaptationFit] = field(default_factory=list)


def adaptation_warnings(pieces: int, seconds: float, share: dict[str, float], config: AdaptationConfig, *,
                        calm: bool = False) -> list[str]:
    """Why a set of ``pieces`` (``seconds`` of audio, heard by the unadapted model as ``share``) should not be
    trusted to adapt by ``config`` (``calm``: it is a calm reading); empty when it looks trustworthy. The one rule
    of ``adapt`` and the service. A set that sounds mostly like one emotion is warned about unless ``config`` is
    one measured to survive lopsided material (:data:`ADAPT_LOPSIDED_SAFE`)."""
    warnings = []
    min_pieces, min_seconds = (ENROL_MIN_PIECES, ENROL_MIN_SECONDS) if calm else (ADAPT_MIN_PIECES,
                                                                                ADAPT_MIN_SECONDS)
    if pieces < min_pieces or seconds < min_seconds:
        warnings.append(f"too small to trust: {pieces} pieces, {seconds:.0f} s of audio (needs at least "
                        f"{min_pieces} pieces and {min_seconds:g} s)")
    top = max(share, key=share.get) if share else None
    if not calm and top is not None and share[top] > ADAPT_MAX_SHARE and config not in ADAPT_LOPSIDED_SAFE:
        warnings.append(f"too uniform to trust: {share[top]:.0%} of it sounds {top}; normalising by it would "
                        f"pull {top} toward the middle. Add recordings of other moods, or do not adapt")
    return warnings


def _seconds(value: float) -> str:
    # rounded down, so that a 0.49 s clip does not read "0.5 s, needs 0.5 s"
    return f"{math.floor(value * 100) / 100:g} s"


def speech_shortfall(duration: float, speech: float | None = None) -> str | None:
    """The reason an input of ``duration`` seconds (``speech`` of them detected as speech) is too short to
    label, or None. The one rule of ``predict`` and ``analyze``."""
    if duration < MIN_SPEECH_SECONDS:
        return f"too short: {_seconds(duration)}, needs {MIN_SPEECH_SECONDS:g} s"
    if speech is not None and speech < MIN_SPEECH_SECONDS:
        return f"too little speech: {_seconds(speech)} detected, needs {MIN_SPEECH_SECONDS:g} s"
    return None


def default_model_path() -> Path:
    """Path of the default model shipped with serkit (it may not exist in a development checkout)."""
    return shipped_model_path("default")


def shipped_model_path(name: str) -> Path:
    """Path of a model shipped with serkit by name (:data:`SHIPPED_MODELS`)."""
    return Path(str(resources.files("serkit").joinpath(SHIPPED_MODELS[name])))


def load_model(name_or_path: str | os.PathLike | None = None, *, backend: str = "torch",
               device: str = "cpu", vad: str = "auto", precision: str | None = None) -> EmotionModel:
    """Load a model for prediction.

    Parameters
    ----------
    name_or_path : None or ``"default"`` for serkit's default model, ``"cnn"`` for the fast CNN shipped beside it;
        otherwise a ``model.pt`` bundle, an exported ``.onnx`` or a run folder (its fold models are averaged).
    backend : ``"torch"`` or ``"onnx"`` (the torch models exported to ONNX and run with onnxruntime).
    device : torch device for the torch backend.
    vad : voice activity detection that finds the speech in inputs longer than the model's clip: "auto"
        (silero-vad when installed, else energy), "silero", "energy" or "none".
    precision : a pretrained encoder's precision, ``"float32"`` or ``"int8"`` (see
        :class:`serkit.features.WhisperConfig`); None: :data:`DEFAULT_PRECISION` for the shipped models, the
        recipe's own for a model file or run folder. Models without an encoder ignore it.

    Raises
    ------
    ConfigError
        when the model cannot be found or read, or the default model is not installed.
    """
    name = "default" if name_or_path is None else str(name_or_path)
    if name in SHIPPED_MODELS and not Path(name).exists():
        path = default_model_path() if name == "default" else shipped_model_path(name)  # (tests patch the former)
        if not path.is_file():
            raise ConfigError(f"serkit's {name} model is not installed (expected at {path}); pass a model file "
                              "or a run folder written by `serkit train` instead")
        return EmotionModel(path, backend=backend, device=device, source=name, vad=vad,
                            precision=DEFAULT_PRECISION if precision is None else precision)
    return EmotionModel(name_or_path, backend=backend, device=device, vad=vad, precision=precision)


def to_mono(y: np.ndarray, name: str) -> np.ndarray:
    """A waveform array -> float32 mono, checked.

    A 2-D array is (channels, samples) as librosa returns or (samples, channels) as soundfile returns: the axis
    of length <= 8 is taken as the channel axis. Integer PCM is scaled to [-1, 1).
    """
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        half = 2.0 ** (8 * y.dtype.itemsize - 1)
        y = (y.astype(np.float64) - (half if y.dtype.kind == "u" else 0.0)) / half
    elif y.dtype.kind != "f":
        raise AudioError(name, f"expected a numeric waveform array, got dtype {y.dtype}")
    if y.ndim == 2:
        if y.shape[0] <= 8 < y.shape[1]:
            y = y.mean(axis=0)
        elif y.shape[1] <= 8 < y.shape[0]:
            y = y.mean(axis=1)
        else:
            raise AudioError(name, f"cannot tell channels from samples in shape {y.shape}: give (n,), "
                                   "(channels, n) or (n, channels) with at most 8 channels")
    elif y.ndim != 1:
        raise AudioError(name, f"expected a waveform of shape (n,) or 2-D with channels, got shape {y.shape}")
    if y.size == 0:
        raise AudioError(name, "empty: the array holds no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(name, f"{int(np.sum(~np.isfinite(y)))} samples are NaN or infinite")
    return y.astype(np.float32, copy=False)


def _check_rate(sample_rate: Any) -> int:
    if sample_rate is None:
        raise ConfigError("sample_rate: required when audio is given as an array (e.g. predict(y, sample_rate=16000))")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


class EmotionModel:
    """A loaded model (one bundle or a fold ensemble) with a simple, thread-safe prediction API.

    Attributes
    ----------
    labels : class names, the column order of ``predict_proba``.
    sample_rate : the rate the model's inputs are resampled to.
    window_seconds : the clip (or segment) length the model was trained on; the analysis window default.
    card : the model card stored in the bundle (``info["model_card"]``), or None.
    window_config : how an input longer than the model's clip is cut into windows over its speech.
    """

    def __init__(self, model: str | os.PathLike, *, backend: str = "torch", device: str = "cpu",
                 source: str | None = None, vad: str = "auto", precision: str | None = None):
        self.pipeline = EmotionPipeline.load(model, device=device, backend=backend, precision=precision)
        first = self.pipeline.bundles[0]
        self.source = source or str(model)
        self.labels: list[str] = list(self.pipeline.labels)
        self.audio = self.pipeline.audio
        self.sample_rate = self.audio.sample_rate
        segments = self.pipeline.segments
        self.window_seconds = float(segments.length if segments else self.audio.duration or FALLBACK_WINDOW_SECONDS)
        card = first.info.get("model_card") if isinstance(first.info, dict) else None
        self.card: dict[str, Any] | None = card if isinstance(card, dict) else None
        self.recipe_name: str = str(first.recipe.get("name", "?"))
        # Windows overlap by half: every stretch of speech is seen whole by some window.
        try:
            self.window_config = AnalysisConfig(vad=vad, hop=self.window_seconds / 2, smoothing=1)
        except ValueError as exc:
            raise ConfigError(f"vad: expected 'auto', 'silero', 'energy' or 'none', got {vad!r}") from exc
        self._lock = FairLock()
        self.adaptation: Adaptation | None = None  # set by adapt()
        self.strict_pipeline = self.pipeline  # what adapt() started from

    def __repr__(self) -> str:
        return (f"EmotionModel({self.source!r}, {len(self.pipeline.members)} model(s), labels={self.labels}, "
                f"{self.sample_rate} Hz)")

    # -- public API ----------------------------------------------------------------------------------
    def predict_proba(self, audio: AudioInput | Sequence[AudioInput], sample_rate: int | None = None) -> np.ndarray:
        """Class probabilities: shape (C,) for one input, (N, C) for a list; columns follow ``labels``.

        Raises
        ------
        AudioError
            naming the input (path, or ``<array i>``) and the reason; for a list, after trying every item,
            naming each one that failed. Use :meth:`predict_batch` to go on past failures instead.
        """
        single = _is_single(audio)
        result = self.predict_batch([audio] if single else audio, sample_rate)
        if result.failures:
            if len(result.failures) == 1:
                raise AudioError(*result.failures[0])
            listed = "; ".join(f"{p}: {r}" for p, r in result.failures)
            raise AudioError(None, f"{len(result.failures)} of {len(result.failures) + len(result.paths)} "
                                   f"inputs failed: {listed}")
        return result.proba[0] if single else result.proba

    def predict(self, audio: AudioInput | Sequence[AudioInput], sample_rate: int | None = None) -> str | list[str]:
        """The most probable label: a string for one input, a list for a list (errors as ``predict_proba``)."""
        proba = self.predict_proba(audio, sample_rate)
        if proba.ndim == 1:
            return self.labels[int(proba.argmax())]
        return [self.labels[int(i)] for i in proba.argmax(1)]

    def adapt(self, items: Sequence[AudioInput], sample_rate: int | None = None, *, neutral: bool = False,
              config: AdaptationConfig | None = None) -> EmotionModel:
        """Adapt this model, in place, to one person or setting (see :meth:`adapted`). Returns ``self``.

        Call it on a freshly loaded model (adapting twice measures the second set against the first).
        """
        model = self.adapted(items, sample_rate, neutral=neutral, config=config)
        with self._lock:
            if self.pipeline is not model.strict_pipeline:
                raise ConfigError(f"{self.source}: adapted by another call meanwhile; adapt a freshly loaded model")
            self.pipeline, self.adaptation, self.source = model.pipeline, model.adaptation, model.source
        return self

    def adapted(self, items: Sequence[AudioInput], sample_rate: int | None = None, *, neutral: bool = False,
                config: AdaptationConfig | None = None) -> EmotionModel:
        """A copy of this model adapted to one person or setting: it standardises features with statistics moved
        toward those of their unlabelled recordings (``items``: paths or arrays); this model stays strict.

        ``neutral=True``: the recordings are a calm reading in the person's ordinary voice (an enrolment), and
        the model is adapted by :data:`NEUTRAL_ENROLMENT`; otherwise by ``config`` (default
        :data:`serkit.inference.pipeline.ADAPTATION`). See :mod:`serkit.features.adaptation` for the methods.

        Each input is cut into pieces of ``ADAPT_PIECE_SECONDS`` (its quiet pieces left out). What it was adapted
        to is in the copy's :attr:`adaptation`, with warnings when the set is too small or too uniform to be
        trusted (see ``ADAPT_*``). Its predictions are adapted results: report them beside strict ones, never as
        them.
        """
        if neutral and config is not None:
            raise ConfigError("adapt: give neutral=True or a config, not both")
        if _is_single(items):
            items = [items]
        self._check_adaptable()
        items = list(items)
        names = [str(x) if not isinstance(x, np.ndarray) else f"<array {i}>" for i, x in enumerate(items)]
        rate = _check_rate(sample_rate) if any(isinstance(x, np.ndarray) for x in items) else None
        piece_len = round(ADAPT_PIECE_SECONDS * self.sample_rate)
        pieces: list[np.ndarray] = []
        seconds = 0.0  # of audio in the pieces, before a fixed-clip model pads or crops them
        failures: list[tuple[str, str]] = []
        for item, name in zip(items, names):
            try:
                y, y_rate = self._read_input(item, rate, name)
                y = prepare_signal(y, y_rate, self.audio.model_copy(update={"duration": None}))
            except AudioError as exc:
                failures.append((name, exc.reason))
                continue
            peak = float(np.max(np.abs(y))) or 1.0
            for start in range(0, len(y), piece_len):
                piece = y[start:start + piece_len]
                loud = 20 * np.log10(max(float(np.max(np.abs(piece))), 1e-12) / peak) > -_ADAPT_QUIET_DB
                if len(piece) >= round(MIN_SPEECH_SECONDS * self.sample_rate) and loud:
                    seconds += len(piece) / self.sample_rate
                    pieces.append(piece if self.audio.num_samples is None else fix_length(
                        piece, self.audio.num_samples, pad_mode=self.audio.pad_mode, crop=self.audio.crop))
        if not pieces:
            raise AudioError(None, f"adapt: no usable audio in {len(items)} input(s)"
                                   + (f" ({failures[0][0]}: {failures[0][1]})" if failures else ""))
        with self._lock:  # the extractor, model and normaliser are shared with predictions: one batch at a time
            X = self.pipeline.extractor.pool(self.pipeline.extractor.from_signals(pieces))
        what = "a calm reading of " if neutral else ""
        return self.adapted_to_features(X, seconds=seconds, pieces=len(pieces), neutral=neutral, config=config,
                                        inputs=len(items) - len(failures), failures=failures,
                                        label=f"adapted to {what}{len(items) - len(failures)} recording(s)")

    def adapted_to_features(self, X: np.ndarray, *, seconds: float, pieces: int | None = None, label: str,
                            neutral: bool = False, config: AdaptationConfig | None = None, inputs: int = 1,
                            failures: Sequence[tuple[str, str]] = ()) -> EmotionModel:
        """:meth:`adapted` from pooled features of the person's material (``X``: one row per piece or window,
        ``seconds`` of audio, ``pieces`` of :data:`ADAPT_PIECE_SECONDS` for the warnings, default ``len(X)``);
        ``label`` says what it was adapted to (it ends the copy's :attr:`source`). The service adapts from the
        window features its analyses kept."""
        if neutral and config is not None:
            raise ConfigError("adapt: give neutral=True or a config, not both")
        config = NEUTRAL_ENROLMENT if neutral else (config or ADAPTATION)
        self._check_adaptable()
        X = np.asarray(X)
        if not len(X):
            raise ConfigError(f"{self.source}: adapt: no material to adapt to")
        with self._lock:
            pipeline = self.pipeline
            heard = pipeline.proba_of_features(X, None, len(X)).argmax(1)
        share = {lab: float(np.mean(heard == j)) for j, lab in enumerate(self.labels)}
        n = len(X) if pieces is None else pieces
        warnings = adaptation_warnings(n, seconds, share, config, calm=neutral)
        adapted, fits = pipeline.adapted(X, source=self.source, config=config)
        model = copy.copy(self)  # the same extractor, lock and settings; another pipeline
        model.pipeline, model.strict_pipeline = adapted, pipeline
        model.adaptation = Adaptation(inputs, n, seconds, share, warnings, list(failures), config, fits)
        model.source = f"{self.source} ({label})"
        return model

    def distance_to_material(self, X: np.ndarray) -> VoiceDistance | None:
        """How far the pooled features ``X`` of a recording lie from the material this model was adapted to
        (:func:`serkit.features.adaptation.voice_distance`; ``unlike`` says: another voice or setting?); None for
        a model that was not adapted."""
        if self.adaptation is None or not self.adaptation.fits or X is None or not len(X):
            return None
        return voice_distance(self.strict_pipeline.members[0].normalizer, self.adaptation.fits[0].material_mean, X)

    @property
    def adaptable(self) -> bool:
        """Whether :meth:`adapted` works for this model (single-stream, pooled, standardised features)."""
        try:
            self._check_adaptable()
        except ConfigError:
            return False
        return True

    def _check_adaptable(self) -> None:
        if self.pipeline.segments is not None:
            raise ConfigError(f"{self.source}: adaptation is not available for segment models")
        if any(not isinstance(m.normalizer, FeatureNormalizer) or m.normalizer.scope == "none"
               for m in self.pipeline.members):
            raise ConfigError(f"{self.source}: this model does not standardise its features (or has several input "
                              "streams), so there are no statistics to adapt")

    def predict_batch(self, items: Sequence[AudioInput], sample_rate: int | None = None, *,
                      vad: str | None = None) -> Predictions:
        """Probabilities of many inputs, going on past the ones that fail (listed in ``failures``).

        Each input is judged as a whole (see the module docstring); the windows of inputs longer than the
        model's clip are in the result's ``windows``. Arrays are named ``<array i>`` (i their position) in the
        result's ``paths`` and ``failures``. ``vad`` overrides, for this call, the voice activity detection the
        model was loaded with (it finds the speech of inputs longer than the model's clip).
        """
        if _is_single(items):
            raise ConfigError("predict_batch: expected a list of inputs, got a single one")
        try:
            window_config = self.window_config if vad is None else self.window_config.model_copy(
                update={"vad": AnalysisConfig(vad=vad).vad})
        except ValueError as exc:
            raise ConfigError(f"vad: expected 'auto', 'silero', 'energy' or 'none', got {vad!r}") from exc
        items = list(items)
        names = [str(x) if not isinstance(x, np.ndarray) else f"<array {i}>" for i, x in enumerate(items)]
        rate = _check_rate(sample_rate) if any(isinstance(x, np.ndarray) for x in items) else None
        clips: dict[int, np.ndarray] = {}  # inputs that fit in one clip, prepared; classified as one batch
        proba: dict[int, np.ndarray] = {}
        windows: dict[str, list[dict[str, Any]]] = {}
        failures: dict[int, str] = {}

        def judge(i: int) -> None:
            try:
                y, y_rate = self._read_input(items[i], rate, names[i])
                clip = self._one_clip(y, y_rate, names[i])
                if clip is not None:
                    clips[i] = clip
                else:
                    proba[i], windows[names[i]] = self._windowed_proba(y, y_rate, names[i], window_config)
            except AudioError as exc:
                failures[i] = exc.reason

        # Two readers at a time, as load_clips: libsndfile and soxr release the GIL; the model runs under the lock.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(judge, range(len(items))))
        clips = dict(sorted(clips.items()))
        if clips:
            for i, p in zip(clips, self.proba_of_prepared(list(clips.values()))):
                proba[i] = p
        ok = sorted(proba)
        table = np.stack([proba[i] for i in ok]) if ok else np.zeros((0, len(self.labels)))
        return Predictions([names[i] for i in ok], self.labels, table,
                           [(names[i], failures[i]) for i in sorted(failures)], windows)

    def _read_input(self, item: Any, rate: int | None, name: str) -> tuple[np.ndarray, int]:
        """A path or an array -> (mono float32 waveform, its rate), checked; the model's offset applied."""
        if isinstance(item, np.ndarray):
            y = to_mono(item, name)
            peak = float(np.max(np.abs(y)))
            if peak == 0.0 or 20.0 * np.log10(peak) < SILENCE_PEAK_DBFS:
                raise AudioError(name, f"silent: peak below {SILENCE_PEAK_DBFS:g} dBFS")
            return y, int(rate)
        if not isinstance(item, (str, os.PathLike)):
            raise AudioError(name, f"expected a path or a waveform array, got {type(item).__name__}")
        # The whole file (from the model's offset): long files are judged window by window.
        return read_audio(item, mono=True, offset=self.audio.offset)

    def _one_clip(self, y: np.ndarray, rate: int, name: str) -> np.ndarray | None:
        """The model's input for ``y`` when what the recipe keeps of it (after its silence trimming) fits in one
        clip, as every training clip did; None when it is longer (judged by windows)."""
        reason = speech_shortfall(len(y) / rate)
        if reason:
            raise AudioError(name, reason)
        try:
            # prepare_signal without the final pad/crop, which is applied below when the signal fits
            kept = prepare_signal(y, rate, self.audio.model_copy(update={"duration": None}))
        except AudioError as exc:
            raise AudioError(name, exc.reason) from None
        if self.audio.num_samples is None:  # no fixed clip (encoders, functionals, segment models): any length
            reason = speech_shortfall(len(y) / rate, len(kept) / self.audio.sample_rate)
            if reason:
                raise AudioError(name, reason)
            # a recording (not a clip): windows over its speech, listed per window, as for fixed-clip models
            return None if len(kept) > WHOLE_INPUT_SECONDS * self.audio.sample_rate else kept
        if len(kept) > self.audio.num_samples:
            return None
        reason = speech_shortfall(len(y) / rate, len(kept) / self.audio.sample_rate)
        if reason and (self.audio.trim_silence_db is not None or self.audio.remove_silence):
            raise AudioError(name, reason)
        return fix_length(kept, self.audio.num_samples, pad_mode=self.audio.pad_mode, crop=self.audio.crop)

    def _windowed_proba(self, y: np.ndarray, rate: int, name: str,
                        window_config: AnalysisConfig) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """A long input: windows over its speech, probabilities averaged weighted by the speech each stands for."""
        stream = StreamAnalyzer(self, rate, 1, window_config)
        try:
            results = stream.push(y) + stream.finish()
        except AudioError as exc:
            raise AudioError(name, exc.reason) from None
        regions = stream.take_regions()
        reason = speech_shortfall(len(y) / rate, sum(e - s for s, e in regions))
        if reason or not results:
            raise AudioError(name, reason or speech_shortfall(len(y) / rate, 0.0))
        cells = window_cells(results, regions)
        weights = cells[:, 1] - cells[:, 0]
        proba = np.stack([r.proba for r in results])
        detail = [{"start": round(r.start, 3), "end": round(r.end, 3),
                   "probabilities": {lab: round(float(v), 5) for lab, v in zip(self.labels, r.proba)}}
                  for r in results]
        return np.average(proba, axis=0, weights=weights if weights.sum() > 0 else None), detail

    # -- building blocks (used by the analysis) ------------------------------------------------------
    def proba_of_signals(self, signals: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """Probabilities (N, C) of mono float waveforms at ``sample_rate`` (prepared as files would be)."""
        prepared = [prepare_signal(y, sample_rate, self.audio) for y in signals]
        return self.proba_of_prepared(prepared)

    def features_of_signals(self, signals: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """Pooled features (N, ...) of mono float waveforms at ``sample_rate`` (an adaptable model's input to its
        normaliser; see :attr:`adaptable`)."""
        prepared = [prepare_signal(y, sample_rate, self.audio) for y in signals]
        with self._lock:
            return self.pipeline.extractor.pool(self.pipeline.extractor.from_signals(prepared))

    def proba_of_features(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) of pooled features from :meth:`features_of_signals` (of this model or of the
        strict model it was adapted from: they share the extractor)."""
        if not len(X):
            return np.zeros((0, len(self.labels)))
        with self._lock:
            return self.pipeline.proba_of_features(np.asarray(X), None, len(X))

    def proba_of_prepared(self, signals: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, C) of waveforms already prepared with the model's audio config."""
        if not len(signals):
            return np.zeros((0, len(self.labels)))
        out = []
        for chunk in _chunks_of_seconds(list(signals), self.sample_rate, LOCKED_SECONDS):
            # torch modules, openSMILE and the normaliser are shared: one chunk at a time, the lock taken in turn
            # (first come, first served), so that a large request never holds a small one up for long
            with self._lock:
                out.append(self.pipeline.predict_prepared(chunk))
        return np.concatenate(out)


#: The most audio (s) one hold of the model's lock classifies: a 3 s clip waits at most for this much of another
#: request's audio (about 0.2 s on one core for the default model).
LOCKED_SECONDS = 12.0


def _chunks_of_seconds(signals: list[np.ndarray], sample_rate: int, seconds: float) -> list[list[np.ndarray]]:
    """``signals`` in order, cut into runs of at most ``seconds`` of audio (a longer signal alone)."""
    chunks: list[list[np.ndarray]] = [[]]
    held = 0.0
    for y in signals:
        length = y.shape[-1] / sample_rate
        if chunks[-1] and held + length > seconds:
            chunks.append([])
            held = 0.0
        chunks[-1].append(y)
        held += length
    return chunks


class FairLock:
    """A lock granted in the order it was asked for (``threading.Lock`` lets a thread that just released it take it
    again before the threads waiting for it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> FairLock:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


def _is_single(audio: Any) -> bool:
    return isinstance(audio, (str, os.PathLike)) or (isinstance(audio, np.ndarray) and audio.dtype != object)
