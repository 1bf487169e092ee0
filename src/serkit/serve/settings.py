"""Settings of the service (``serkit serve`` options) and the layout of its data folder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The service's files are its owner's alone (0600, folders 0700), whatever the umask it was started with: it sets
#: this umask for its process (a server's files: recordings, results, the database, are personal data).
PRIVATE_UMASK = 0o077

#: Bytes in one MB of ``--max-upload-mb``.
MB = 1024 * 1024


class ServeSettings(BaseModel):
    """What ``serkit serve`` is started with.

    Attributes
    ----------
    data_dir : the SQLite database, uploads and results live here.
    model : a model.pt or run folder; None = serkit's default model.
    keep_audio : keep uploaded recordings after analysis (default: only derived results are stored).
    max_upload_mb : request bodies larger than this are refused with 413 before they are read.
    cors_origins : origins allowed to call the API from other pages; empty = no CORS headers at all.
    rate_limit : requests per minute per token (a token bucket with this burst); 0 = no limit.
    queue_size : analysis jobs queued or running at once, over all tokens; more are refused with 429.
    shutdown_grace : seconds a running job may take to finish on SIGTERM before it is stopped and marked failed.
    max_attempts : times a job interrupted by a crash is started; after that it is marked failed.
    predict_max_seconds : longest clip ``/api/v1/predict`` takes (longer ones belong in an analysis job).
    max_session_minutes : longest recording a session takes, read from the file's header at upload (413 beyond),
        and checked again as the analysis reads it (a header may understate).
    max_job_minutes : wall-clock limit of one analysis job; a job that runs longer is stopped and marked failed.
    queue_per_token : jobs one token may have queued or running at once (its share of ``queue_size``); None: a
        quarter of the queue, at least 1.
    predict_workers : ``/predict`` requests classified at once (each on its own thread, apart from the threads
        that answer the light routes); more wait for a free one.
    predict_per_token : ``/predict`` requests one token may have in progress at once (more: 429 before the body
        is read); None: half of ``predict_workers``, at least 1, so another token always finds a free one.
    job_workers : analysis jobs run at once (threads; they take turns at the model). With more than one, a token
        runs one job at a time while others wait, so one token's long recordings cannot hold up another's.
    predict_timeout : seconds a ``/predict`` request may take, waiting included; clips not reached by then are
        answered as failures (503 when none was).
    max_uploads : request bodies being received at once; more are answered 503 before their body is read.
    retain_days : sessions uploaded longer ago than this are deleted with their files (None: kept until deleted).
    precision : a pretrained encoder's precision (``int8``, ``float32``; None: the model's default).
    speakers : tell each session's voices apart (needs ``serkit[speakers]``; without it sessions are one voice, as
        before): a person's voice profile then picks their turns (:mod:`serkit.serve.voices`).
    """

    model_config = ConfigDict(extra="forbid")

    data_dir: Path
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    keep_audio: bool = False
    max_upload_mb: float = Field(200.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit: int = Field(120, ge=0)
    queue_size: int = Field(32, ge=1)
    shutdown_grace: float = Field(10.0, ge=0)
    max_attempts: int = Field(2, ge=1)
    predict_max_seconds: float = Field(120.0, gt=0)
    max_session_minutes: float = Field(180.0, gt=0)
    max_job_minutes: float = Field(30.0, gt=0)
    queue_per_token: int | None = Field(None, ge=1)
    predict_workers: int = Field(2, ge=1, le=64)
    predict_per_token: int | None = Field(None, ge=1)
    job_workers: int = Field(2, ge=1, le=16)
    predict_timeout: float = Field(60.0, gt=0)
    max_uploads: int = Field(4, ge=1)
    retain_days: float | None = Field(None, gt=0)
    precision: Literal["float32", "int8"] | None = None
    speakers: bool = True

    @property
    def token_predicts(self) -> int:
        """``/predict`` requests one token may have in progress at once."""
        return self.predict_per_token or max(1, self.predict_workers // 2)

    @property
    def token_share(self) -> int:
        """Jobs one token may have queued or running at once."""
        return self.queue_per_token or max(1, self.queue_size // 4)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "serkit.db"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def people_dir(self) -> Path:
        return self.data_dir / "people"

    def without_paths(self, text: str) -> str:
        """``text`` with this server's folders replaced by what they hold: error messages never show paths."""
        for folder, what in ((self.incoming_dir, "the upload"), (self.uploads_dir, "the upload"),
                             (self.results_dir, "the results"), (self.people_dir, "the results"),
                             (self.data_dir, "the data folder")):
            for form in {str(folder.resolve()), str(folder.absolute()), str(folder)}:
                text = re.sub(re.escape(form) + r"[^\s'\":,;)]*", what, text)
        return text

    @property
    def incoming_dir(self) -> Path:
        """Where request bodies are spooled while they arrive (inside the data folder, never the system's temp)."""
        return self.data_dir / "incoming"

    def make_dirs(self) -> None:
        """The data folder and its parts, readable by their owner only (0700) whatever the umask; what the
        process writes from now on is its owner's alone too (:data:`PRIVATE_UMASK`)."""
        os.umask(PRIVATE_UMASK)
        for d in (self.data_dir, self.uploads_dir, self.incoming_dir, self.results_dir, self.people_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
