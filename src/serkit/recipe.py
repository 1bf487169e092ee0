"""Recipes: one YAML file per experiment (corpus, audio, frontend, model, protocol, augmentation, training).

A recipe is a pydantic model, so it prints, saves and validates: a misspelt or out-of-range field gives an
error that names the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serkit.audio import AudioConfig
from serkit.augment import AugmentConfig
from serkit.errors import ConfigError
from serkit.features import FrontendConfig
from serkit.features.segments import SegmentConfig
from serkit.models.calibration import CalibrationConfig
from serkit.models.registry import model_spec
from serkit.training.protocols import ProtocolConfig
from serkit.training.trainer import TrainingConfig
from serkit.utils import atomic_write_text


class CorpusConfig(BaseModel):
    """Which corpus to read. ``root`` may be relative: see :meth:`Recipe.resolve_path`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    root: str
    labels: list[str] | dict[str, str | None] | None = Field(
        None, description="keep only these unified labels (list), or map/drop labels (dict, None drops)"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="loader options, e.g. vocal_channel")


class ModelConfig(BaseModel):
    """A registered model's name and its options (any other field is passed to the model)."""

    model_config = ConfigDict(extra="allow")

    name: str
    init_from: str | None = Field(
        None, description="initialise the model from this serkit model.pt bundle or plain state dict before training"
    )
    init_prefixes: list[str] | None = Field(
        None, description="take only parameters whose names start with one of these (e.g. a stream: 'streams.mfcc.')"
    )

    @property
    def options(self) -> dict[str, Any]:
        """The options passed to the model's builder (every field but name and the initialisation ones)."""
        return dict(self.model_extra or {})


class _YamlConfig(BaseModel):
    """Loading, validating and saving a YAML config; errors name the file and the field."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_yaml(cls, path: str | Path):
        return cls.from_dict(_read_yaml_mapping(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<recipe>"):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                field = ".".join(str(p) for p in _data_path(data, err["loc"])) or "<root>"
                lines.append(f"  {field}: {err['msg']}")
            raise ConfigError(f"{source}: invalid recipe\n" + "\n".join(lines)) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=False), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_yaml())

    def __str__(self) -> str:
        return self.to_yaml()


def _has_validation(protocol: ProtocolConfig) -> bool:
    """Whether the protocol's folds have validation items (what calibration and early stopping need)."""
    if protocol.name in ("loso", "speaker_folds", "cross_corpus"):
        return protocol.n_val_speakers > 0
    if protocol.name == "final":
        return bool(protocol.val_speakers)
    return protocol.val_size > 0  # holdout, kfold, leave_one_corpus_out


def _data_path(data: Any, loc: tuple) -> list:
    """An error location as the path in the data: a discriminated union (the frontend configs) adds its tag
    (e.g. ``frontend.mfcc.n_bands``), which is not a key the user wrote, so it is left out."""
    path, node = [], data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("name") == part:
            continue  # the union's tag
        path.append(part)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML would keep the last one silently,
    so a pasted-over recipe would run under another name or with other settings than it seems to say)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} given twice (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give a recipe file, e.g. {path / 'name.yaml'}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping, got {type(data).__name__}")
    return data


class Recipe(_YamlConfig):
    name: str
    description: str = ""
    paper: str | None = None
    corpus: CorpusConfig | list[CorpusConfig]
    audio: AudioConfig = Field(default_factory=AudioConfig)
    frontend: FrontendConfig | None = Field(None, description="the frontend of a single-input model")
    frontends: dict[str, FrontendConfig] | None = Field(
        None, description="a multi-input model's streams: stream name -> frontend config (serkit.multi_input)"
    )
    pooling: Literal["none", "mean", "mean_std"] = Field(
        "none", description="pool features over time (e.g. mountzouris2023's time-averaged MFCCs)"
    )
    segments: SegmentConfig | None = Field(
        None, description="cut utterances into fixed-length segments (akalya2022: 3 s); predictions average them"
    )
    model: ModelConfig
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    normalization: Literal["global", "per_speaker", "none"] = "global"
    calibration: CalibrationConfig = Field(
        default_factory=CalibrationConfig,
        description="temperature: scale the model's probabilities by one temperature fitted (NLL) on the fold's "
        "validation speakers, or with fit_on: cross_fit on them and out-of-fold predictions of the training "
        "speakers; the argmax is unchanged, ECE before and after is reported")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @field_validator("corpus")
    @classmethod
    def _non_empty(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("give at least one corpus")
        return value

    @model_validator(mode="after")
    def _one_kind_of_frontend(self) -> Recipe:
        if (self.frontend is None) == (self.frontends is None):
            raise ValueError("give either 'frontend' (one input) or 'frontends' (stream name -> frontend), not "
                             + ("both" if self.frontend is not None else "neither"))
        if self.frontends is not None and not self.frontends:
            raise ValueError("frontends: give at least one stream")
        for fc in self.frontend_configs.values():
            if fc.pools_itself and self.pooling != "none":
                raise ValueError(f"pooling: the {fc.name} frontend pools itself (see its own options); leave the "
                                 "recipe's pooling at none")
            if self.calibration.enabled and not _has_validation(self.protocol):
                raise ValueError(f"calibration: temperature is fitted on validation speakers, and protocol "
                                 f"{self.protocol.name!r} as set has none (set n_val_speakers, val_size or "
                                 "val_speakers)")
            if fc.output_kind(self.pooling) == "frame_sequence" and self.normalization != "none":
                raise ValueError("normalization: frame sequences carry zero padding and a mask row, which feature "
                                 "statistics would mix in; set normalization: none (the sequence heads normalise "
                                 "each frame themselves)")
        return self

    @property
    def frontend_configs(self) -> dict[str, FrontendConfig]:
        """Every frontend of the recipe by stream name (a single-input recipe's one is named ``"features"``)."""
        return dict(self.frontends) if self.frontends is not None else {"features": self.frontend}

    @property
    def corpora(self) -> list[CorpusConfig]:
        return self.corpus if isinstance(self.corpus, list) else [self.corpus]

    def with_overrides(self, **dotted: Any) -> Recipe:
        """A copy with fields set by dotted names, e.g. ``{"protocol.name": "loso", "training.max_epochs": 5}``."""
        data = self.model_dump(mode="json")
        for key, value in dotted.items():
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"{key}: no such recipe section {part!r}")
                node = node[part]
            node[parts[-1]] = value
        return Recipe.from_dict(data, source=f"{self.name} with overrides")


class FusionMember(BaseModel):
    """One system of a fusion recipe: a recipe file, trained into ``<out>/members/<name>``."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="the member's recipe file; a relative path is read from the fusion recipe's folder")
    weight: float = Field(1.0, ge=0, description="its share of the fused probabilities (weights are normalised)")
    seeds: list[int] | None = Field(None, description="override the member's protocol.seeds (averaged first)")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="override member fields by dotted name, like serkit train --set")
    name: str | None = Field(None, description="its folder under <out>/members (default: its recipe's name)")


class FusionRecipe(_YamlConfig):
    """Late fusion of several recipes as one system: ``serkit train`` trains each member under the same
    protocol, then averages their test probabilities per utterance (each member's seeds first, then the members
    with their fixed weights; see :func:`serkit.training.fusion.fuse_runs`). A YAML file with ``members`` is one.
    """

    name: str
    description: str = ""
    paper: str | None = None
    members: list[FusionMember] = Field(min_length=1)

    def member_recipes(self, *, recipe_file: str | Path | None = None) -> list[tuple[str, Recipe, Path]]:
        """Each member as (folder name, recipe with the member's seeds and then its ``set`` applied, recipe file).
        Command-line fields reach the members through :meth:`with_overrides`, which adds them to every ``set``.

        Raises ConfigError when a member's file is missing or invalid, two members share a folder name, or the
        members would not test the same utterances the same way (corpus, labels, protocol, normalisation).
        """
        base = Path(recipe_file).resolve().parent if recipe_file is not None else Path.cwd()
        out: list[tuple[str, Recipe, Path]] = []
        for i, member in enumerate(self.members, 1):
            path = Path(os.path.expandvars(os.path.expanduser(member.recipe)))
            path = path if path.is_absolute() else base / path
            # the member's seeds, then its own fields (which end with the command line's, see with_overrides)
            dotted: dict[str, Any] = {} if member.seeds is None else {"protocol.seeds": list(member.seeds)}
            dotted.update(member.set)
            try:
                rec = Recipe.from_yaml(path)
                rec = rec.with_overrides(**dotted) if dotted else rec
            except ConfigError as exc:
                raise ConfigError(f"{self.name}: member {i} ({member.recipe}): {exc}") from None
            out.append((member.name or rec.name, rec, path))
        names = [name for name, _, _ in out]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.name}: members share a folder name ({', '.join(names)}); give each a 'name'")
        first_name, first, _ = out[0]
        for name, rec, _ in out[1:]:
            for what, mine, theirs in (
                ("corpus", [(c.name, c.labels) for c in rec.corpora], [(c.name, c.labels) for c in first.corpora]),
                ("protocol", rec.protocol.model_dump(exclude={"seeds"}), first.protocol.model_dump(exclude={"seeds"})),
                ("normalization", rec.normalization, first.normalization),
            ):
                if mine != theirs:
                    raise ConfigError(f"{self.name}: member {name}'s {what} ({mine}) differs from {first_name}'s "
                                      f"({theirs}); fused members must test the same utterances the same way")
        return out

    def with_overrides(self, **dotted: Any) -> FusionRecipe:
        """A copy whose every member also sets these fields (what ``serkit train FUSION --set`` does)."""
        members = [member.model_copy(update={"set": {**member.set, **dotted}}) for member in self.members]
        return self.model_copy(update={"members": members})


def load_recipe(path: str | Path) -> Recipe | FusionRecipe:
    """Read a recipe file: a fusion recipe when it has ``members``, otherwise a single system's recipe."""
    data = _read_yaml_mapping(path)
    cls = FusionRecipe if "members" in data else Recipe
    return cls.from_dict(data, source=str(path))


def resolve_path(path: str | Path, *, recipe_file: str | Path | None = None) -> Path:
    """Resolve a corpus root: ``~`` and ``$VARS`` expanded; a relative path is tried against the working
    directory first, then against the folder above the recipe's folder (the repository root for
    ``recipes/*.yaml``)."""
    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if p.is_absolute() or p.exists() or recipe_file is None:
        return p.resolve()
    alt = Path(recipe_file).resolve().parent.parent / p
    return alt.resolve() if alt.exists() else p.resolve()


def model_streams(model_name: str, options: Mapping[str, Any] | None = None) -> tuple[str, ...] | None:
    """The ordered input streams of a registered model, or None for a single-input model."""
    spec = model_spec(model_name)
    streams = {**spec.defaults, **dict(options or {})}.get("streams")
    return None if streams is None else tuple(str(s) for s in streams)


def check_recipe_streams(recipe: Recipe) -> tuple[str, ...] | None:
    """Check a recipe's ``frontend`` / ``frontends`` against what its model declares.

    Returns the model's stream order (None for a single-input model). Raises a ConfigError naming the field.
    """
    spec = model_spec(recipe.model.name)
    streams = model_streams(recipe.model.name, recipe.model.options)
    if streams is None:
        if recipe.frontends is not None:
            raise ConfigError(f"frontends: model {recipe.model.name!r} takes one input; give 'frontend:' "
                              f"(one giving {', '.join(spec.inputs)} features) instead")
        kind = recipe.frontend.output_kind(recipe.pooling)
        if kind not in spec.inputs:
            raise ConfigError(f"frontend.name: model {recipe.model.name!r} takes {' or '.join(spec.inputs)} input; "
                              f"frontend {recipe.frontend.name!r} with pooling {recipe.pooling!r} gives {kind}")
        return None
    if recipe.frontends is None:
        raise ConfigError(f"frontends: model {recipe.model.name!r} takes the streams {', '.join(streams)}; "
                          "give 'frontends:' as a mapping stream name -> frontend config")
    given = list(recipe.frontends)
    if sorted(given) != sorted(streams):
        raise ConfigError(f"frontends: model {recipe.model.name!r} takes the streams {list(streams)}, "
                          f"the recipe gives {given}")
    for name in streams:
        kind = recipe.frontends[name].output_kind(recipe.pooling)
        if kind not in spec.inputs:
            raise ConfigError(f"frontends.{name}.name: model {recipe.model.name!r} takes {' or '.join(spec.inputs)} "
                              f"streams; frontend {recipe.frontends[name].name!r} gives {kind}")
    return streams
