"""Settings of the service (``serkit serve`` options) and the layout of its data folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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

    def make_dirs(self) -> None:
        for d in (self.data_dir, self.uploads_dir, self.results_dir, self.people_dir):
            d.mkdir(parents=True, exist_ok=True)
