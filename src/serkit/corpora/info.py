"""Corpus statistics as tables (for reports and ``serkit corpus info``)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
from rich.console import Console
from rich.table import Table

from serkit.corpora.base import Corpus


def describe_corpus(corpus: Corpus) -> dict[str, pd.DataFrame]:
    """Count a corpus's utterances.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``labels`` (per label: utterances, share, speakers), ``speaker_label`` (speaker x label
        counts plus a ``total`` column; unknown speakers as "unknown"), ``gender`` (per gender:
        utterances, speakers), ``problems`` (per kind: count, whether it is an error) and, when the
        table has a ``duration`` column, ``durations`` (per label and "all": total, mean, min and
        max seconds).
    """
    table = corpus.utterances
    labels = table["label"].astype(str)
    speakers = table["speaker"].astype(object).where(table["speaker"].notna(), "unknown")
    genders = table["gender"].astype(object).where(table["gender"].notna(), "unknown")

    per_label = pd.DataFrame(
        {
            "utterances": labels.value_counts(),
            "share": labels.value_counts(normalize=True),
            "speakers": table.groupby(labels)["speaker"].nunique(),
        }
    ).sort_index()
    per_label.index.name = "label"

    speaker_label = pd.crosstab(speakers, labels)
    speaker_label["total"] = speaker_label.sum(axis=1)
    speaker_label.index.name, speaker_label.columns.name = "speaker", None

    per_gender = pd.DataFrame(
        {"utterances": genders.value_counts(), "speakers": table.groupby(genders)["speaker"].nunique()}
    ).sort_index()
    per_gender.index.name = "gender"

    kinds = Counter((p.kind, p.is_error) for p in corpus.problems)
    problems = pd.DataFrame(
        [{"kind": kind, "count": n, "error": is_error} for (kind, is_error), n in sorted(kinds.items())],
        columns=["kind", "count", "error"],
    )

    out = {"labels": per_label, "speaker_label": speaker_label, "gender": per_gender, "problems": problems}
    if "duration" in table.columns:
        durations = table["duration"].astype(float)
        rows = {label: durations[labels == label] for label in per_label.index}
        rows["all"] = durations
        out["durations"] = pd.DataFrame(
            {
                name: {"total_s": d.sum(), "mean_s": d.mean(), "min_s": d.min(), "max_s": d.max()}
                for name, d in rows.items()
            }
        ).T.rename_axis("label")
    return out


def channel_note(corpus: Corpus) -> str | None:
    """Which channel of multichannel files is read (a ``channel`` column, e.g. EMOVO's), or None.

    With a ``channels`` column (from the headers, see :meth:`Corpus.add_durations`) it says how many channels
    the files have, so that a stereo corpus read by the mean shows up too.
    """
    table = corpus.utterances
    counts = {}
    if "channels" in table.columns:
        counts = {int(k): int(v) for k, v in table["channels"].dropna().value_counts().sort_index().items()}
    multichannel = sum(v for k, v in counts.items() if k > 1)
    files = ", ".join(f"{v} with {k} channel{'s' if k > 1 else ''}" for k, v in counts.items())
    if "channel" in table.columns and table["channel"].notna().any():
        choices = ", ".join(str(v) for v in table["channel"].dropna().astype(str).unique())
        return f"audio channel read: {choices} (not the mean of the channels)" + (f"; files: {files}" if files else "")
    if multichannel:
        return f"audio channel read: the mean of the channels; files: {files}"
    return None


def _rich_table(frame: pd.DataFrame, title: str, float_format: str = "{:.2f}") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(str(frame.index.name or ""), style="bold", no_wrap=True)
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    # itertuples keeps each column's type (iterrows would turn integer counts into floats)
    for index, *row in frame.itertuples(name=None):
        cells = [float_format.format(v) if isinstance(v, float) else str(v) for v in row]
        table.add_row(str(index), *cells)
    return table


def print_corpus_info(corpus: Corpus, console: Console | None = None, *, max_problems: int = 20) -> None:
    """Print a corpus's counts as rich tables, then its problems (the first ``max_problems`` listed)."""
    console = console or Console()
    tables = describe_corpus(corpus)
    console.print(
        f"[bold]{corpus.name}[/bold] at {corpus.root}: {len(corpus)} utterances, "
        f"{len(corpus.speakers)} speakers, {len(corpus.labels)} labels"
    )
    note = channel_note(corpus)
    if note:
        console.print(note)
    console.print(_rich_table(tables["labels"], "Labels"))
    console.print(_rich_table(tables["speaker_label"], "Speakers x labels"))
    console.print(_rich_table(tables["gender"], "Gender"))
    if "durations" in tables:
        console.print(_rich_table(tables["durations"], "Durations (s)"))
    if not corpus.problems:
        console.print("No problems.")
        return
    console.print(_rich_table(tables["problems"].set_index("kind"), f"Problems ({len(corpus.problems)})"))
    listing = Table(title=f"First {min(max_problems, len(corpus.problems))} problems", title_justify="left")
    listing.add_column("path", overflow="fold")
    listing.add_column("reason", overflow="fold")
    for problem in corpus.problems[:max_problems]:
        listing.add_row(problem.path, problem.reason)
    console.print(listing)
