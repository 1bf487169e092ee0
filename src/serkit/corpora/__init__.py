"""Emotional speech corpora as tables of utterances with unified labels.

One loader per corpus (EmoDB, RAVDESS, SAVEE, TESS, CREMA-D, IEMOCAP, nEMO, EMOVO, ASED) plus a folder-per-label and a
CSV-manifest loader for a user's own data, all reached through :func:`load_corpus`.
"""

from __future__ import annotations

from serkit.corpora import (  # noqa: F401  (registers)
    ased,
    cremad,
    emodb,
    emovo,
    folder,
    iemocap,
    manifest,
    nemo,
    ravdess,
    savee,
    tess,
)
from serkit.corpora.ased import load_ased
from serkit.corpora.base import (
    AUDIO_EXTENSIONS,
    CORE_COLUMNS,
    Corpus,
    Problem,
    build_corpus,
    combine,
    corpus_audio_files,
    corpus_options,
    inspect_audio_file,
    list_corpora,
    load_corpus,
    probe_audio,
    register_corpus,
)
from serkit.corpora.cremad import load_cremad
from serkit.corpora.emodb import load_emodb
from serkit.corpora.emovo import load_emovo
from serkit.corpora.folder import load_folder
from serkit.corpora.iemocap import load_iemocap
from serkit.corpora.info import describe_corpus, print_corpus_info
from serkit.corpora.labels import (
    ASED_LABELS,
    CORPUS_LABELS,
    CREMAD_LABELS,
    EMODB_LABELS,
    EMOVO_LABELS,
    IEMOCAP_4CLASS,
    IEMOCAP_ALL,
    LABEL_SYNONYMS,
    NEMO_LABELS,
    RAVDESS_LABELS,
    SAVEE_LABELS,
    TESS_LABELS,
    UNIFIED_LABELS,
    LabelRemap,
    map_labels,
    normalise_label,
    remap_labels,
)
from serkit.corpora.manifest import load_csv_manifest
from serkit.corpora.nemo import load_nemo
from serkit.corpora.ravdess import load_ravdess
from serkit.corpora.savee import load_savee
from serkit.corpora.tess import load_tess

__all__ = [
    "ASED_LABELS",
    "AUDIO_EXTENSIONS",
    "CORE_COLUMNS",
    "CORPUS_LABELS",
    "CREMAD_LABELS",
    "EMODB_LABELS",
    "EMOVO_LABELS",
    "IEMOCAP_4CLASS",
    "IEMOCAP_ALL",
    "LABEL_SYNONYMS",
    "NEMO_LABELS",
    "RAVDESS_LABELS",
    "SAVEE_LABELS",
    "TESS_LABELS",
    "UNIFIED_LABELS",
    "Corpus",
    "LabelRemap",
    "Problem",
    "build_corpus",
    "combine",
    "corpus_audio_files",
    "corpus_options",
    "describe_corpus",
    "inspect_audio_file",
    "list_corpora",
    "load_ased",
    "load_corpus",
    "load_cremad",
    "load_csv_manifest",
    "load_emodb",
    "load_emovo",
    "load_folder",
    "load_iemocap",
    "load_nemo",
    "load_ravdess",
    "load_savee",
    "load_tess",
    "map_labels",
    "normalise_label",
    "print_corpus_info",
    "probe_audio",
    "register_corpus",
    "remap_labels",
]
