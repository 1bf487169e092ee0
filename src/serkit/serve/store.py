"""SQLite storage of the service: tokens (hashes only), people, sessions and analysis jobs.

One connection in WAL mode (readers never wait for the job thread's writes) shared by the request threads and
the job thread under a lock; every change is one transaction. The schema carries a version; :data:`MIGRATIONS`
lists the steps from each older version, and a new database is built by running them from version 1, so the
upgrade path is the path every database takes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from serkit.errors import SerkitError

#: The schema this code reads and writes.
SCHEMA_VERSION = 2

#: Version 1: the first schema (kept verbatim: migrations start from it).
SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    token_id INTEGER NOT NULL REFERENCES tokens(id),
    name TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    token_id INTEGER NOT NULL REFERENCES tokens(id),
    date TEXT NOT NULL,
    recording TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT,
    audio TEXT,
    error TEXT,
    created TEXT NOT NULL
);
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    token_id INTEGER NOT NULL REFERENCES tokens(id),
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    config TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT
);
CREATE INDEX people_token ON people(token_id);
CREATE INDEX sessions_person ON sessions(person_id);
CREATE INDEX jobs_state ON jobs(state, created);
INSERT INTO schema_version VALUES (1);
"""

#: Steps from version k-1 to k. Version 2: restart recovery counts a job's attempts; a session keeps its
#: recording's peak level (the report shows it when the person's report is rebuilt from stored timelines).
MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE sessions ADD COLUMN peak_dbfs REAL"],
}

#: Job states; ``queued`` and ``running`` count against the queue bound.
ACTIVE_STATES = ("queued", "running")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def hash_token(secret: str) -> str:
    """SHA-256 of a token: tokens are 256-bit random strings, so a fast hash cannot be searched backwards."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_id() -> str:
    """Random ids: nothing about other people's data can be guessed from one's own."""
    return uuid.uuid4().hex


class Store:
    """The service's database. Methods taking ``token_id`` only ever see rows that token created."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in _tx), so a migration is atomic.
        self.conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise SerkitError(f"{self.path}: SQLite would not switch to WAL mode (got {mode!r}); is the data "
                              "folder on a network file system?")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    # -- schema --------------------------------------------------------------------------------------
    def version(self) -> int:
        with self._lock:
            has = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'")
            if has.fetchone() is None:
                return 0
            return int(self.conn.execute("SELECT version FROM schema_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the database to :data:`SCHEMA_VERSION` (a new one is created at version 1 first)."""
        with self._lock:
            version = self.version()
            if version > SCHEMA_VERSION:
                raise SerkitError(f"{self.path}: database schema version {version} is newer than this serkit "
                                  f"understands ({SCHEMA_VERSION}); upgrade serkit")
            if version == 0:
                self.conn.executescript("BEGIN;" + SCHEMA_V1 + "COMMIT;")
                version = 1
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with self._tx() as c:
                    for statement in MIGRATIONS[target]:
                        c.execute(statement)
                    c.execute("UPDATE schema_version SET version = ?", (target,))

    def _tx(self):
        return _Transaction(self.conn, self._lock)

    def _one(self, sql: str, args: tuple = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self.conn.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def integrity_check(self) -> str:
        return str(self._one("PRAGMA integrity_check")["integrity_check"])

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- tokens --------------------------------------------------------------------------------------
    def create_token(self, name: str) -> str:
        """A new token for ``name``; the secret is returned once and only its hash is stored."""
        name = name.strip()
        if not name:
            raise SerkitError("--create-token: give the token a name (who or what uses it)")
        secret = "sk-" + secrets.token_urlsafe(32)
        with self._tx() as c:
            c.execute("INSERT INTO tokens (name, hash, created) VALUES (?, ?, ?)", (name, hash_token(secret), now()))
        return secret

    def token_for(self, secret: str) -> dict[str, Any] | None:
        return self._one("SELECT id, name FROM tokens WHERE hash = ?", (hash_token(secret),))

    # -- people --------------------------------------------------------------------------------------
    def create_person(self, token_id: int, name: str) -> dict[str, Any]:
        pid = new_id()
        with self._tx() as c:
            c.execute("INSERT INTO people (id, token_id, name, created) VALUES (?, ?, ?, ?)",
                      (pid, token_id, name, now()))
        return self.person(token_id, pid)

    def person(self, token_id: int, pid: str) -> dict[str, Any] | None:
        return self._one("SELECT p.id, p.name, p.created, (SELECT COUNT(*) FROM sessions s WHERE s.person_id = p.id) "
                         "AS sessions FROM people p WHERE p.id = ? AND p.token_id = ?", (pid, token_id))

    def people(self, token_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT p.id, p.name, p.created, (SELECT COUNT(*) FROM sessions s WHERE s.person_id = p.id) "
                         "AS sessions FROM people p WHERE p.token_id = ? ORDER BY p.created, p.name", (token_id,))

    def delete_person(self, token_id: int, pid: str) -> list[str] | None:
        """Delete a person with their sessions and jobs; returns the session ids (their files go next)."""
        with self._tx() as c:
            if c.execute("SELECT 1 FROM people WHERE id = ? AND token_id = ?", (pid, token_id)).fetchone() is None:
                return None
            sids = [r[0] for r in c.execute("SELECT id FROM sessions WHERE person_id = ?", (pid,))]
            c.execute("DELETE FROM people WHERE id = ?", (pid,))  # sessions and jobs cascade
        return sids

    # -- sessions and jobs ---------------------------------------------------------------------------
    def create_session(self, token_id: int, pid: str, *, date: str, recording: str, audio: str,
                       config: dict[str, Any], queue_size: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A session and its queued analysis job, or None when ``queue_size`` jobs are already active."""
        sid, jid, t = new_id(), new_id(), now()
        with self._tx() as c:
            active = c.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN {ACTIVE_STATES}").fetchone()[0]
            if active >= queue_size:
                return None
            c.execute("INSERT INTO sessions (id, person_id, token_id, date, recording, status, audio, created) "
                      "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)", (sid, pid, token_id, date, recording, audio, t))
            c.execute("INSERT INTO jobs (id, session_id, token_id, state, config, created) VALUES "
                      "(?, ?, ?, 'queued', ?, ?)", (jid, sid, token_id, json.dumps(config), t))
        return self.session(token_id, sid), self.job(token_id, jid)

    _SESSION_COLS = ("s.id, s.person_id, s.date, s.recording, s.status, s.summary, s.error, s.created, s.peak_dbfs, "
                     "s.audio IS NOT NULL AS has_audio, j.id AS job_id")

    def session(self, token_id: int | None, sid: str) -> dict[str, Any] | None:
        """A session (``token_id`` None: any token's, for the job thread)."""
        where, args = ("s.id = ?", (sid,)) if token_id is None else ("s.id = ? AND s.token_id = ?", (sid, token_id))
        return _decode(self._one(f"SELECT {self._SESSION_COLS} FROM sessions s LEFT JOIN jobs j "
                                 f"ON j.session_id = s.id WHERE {where}", args))

    def sessions(self, token_id: int, pid: str) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._all(
            f"SELECT {self._SESSION_COLS} FROM sessions s LEFT JOIN jobs j ON j.session_id = s.id "
            "WHERE s.person_id = ? AND s.token_id = ? ORDER BY s.date, s.created", (pid, token_id))]

    def session_audio(self, sid: str) -> str | None:
        row = self._one("SELECT audio FROM sessions WHERE id = ?", (sid,))
        return row["audio"] if row else None

    def delete_session(self, token_id: int, sid: str) -> bool:
        with self._tx() as c:
            return c.execute("DELETE FROM sessions WHERE id = ? AND token_id = ?", (sid, token_id)).rowcount > 0

    def forget_recording(self, token_id: int, sid: str) -> bool:
        """The session stays (date, name) but its audio and results are gone: it leaves the trend."""
        with self._tx() as c:
            return c.execute("UPDATE sessions SET status = 'recording_deleted', audio = NULL, summary = NULL "
                             "WHERE id = ? AND token_id = ?", (sid, token_id)).rowcount > 0

    def clear_audio(self, sid: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE sessions SET audio = NULL WHERE id = ?", (sid,))

    def job(self, token_id: int | None, jid: str) -> dict[str, Any] | None:
        where, args = ("id = ?", (jid,)) if token_id is None else ("id = ? AND token_id = ?", (jid, token_id))
        row = self._one("SELECT id, session_id, state, progress, error, attempts, config, created, started, finished "
                        f"FROM jobs WHERE {where}", args)
        if row is not None:
            row["config"] = json.loads(row["config"])
        return row

    def active_jobs(self) -> int:
        return int(self._one(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN {ACTIVE_STATES}")["n"])

    def claim_next_job(self) -> dict[str, Any] | None:
        """The oldest queued job, marked running (its attempt counted) in the same transaction."""
        with self._tx() as c:
            row = c.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created, rowid LIMIT 1").fetchone()
            if row is None:
                return None
            c.execute("UPDATE jobs SET state = 'running', progress = 0, started = ?, attempts = attempts + 1 "
                      "WHERE id = ?", (now(), row[0]))
            c.execute("UPDATE sessions SET status = 'running' WHERE id = (SELECT session_id FROM jobs WHERE id = ?)",
                      (row[0],))
        return self.job(None, row[0])

    def set_progress(self, jid: str, progress: float) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET progress = ? WHERE id = ? AND state = 'running'", (round(progress, 4), jid))

    def finish_job(self, jid: str, summary: dict[str, Any], peak_dbfs: float | None) -> bool:
        """Mark a job done and store its session's summary; False when the session was deleted meanwhile."""
        with self._tx() as c:
            row = c.execute("SELECT session_id FROM jobs WHERE id = ?", (jid,)).fetchone()
            if row is None:
                return False
            c.execute("UPDATE jobs SET state = 'done', progress = 1, finished = ?, error = NULL WHERE id = ?",
                      (now(), jid))
            c.execute("UPDATE sessions SET status = 'done', summary = ?, peak_dbfs = ?, error = NULL WHERE id = ?",
                      (json.dumps(summary, default=str), peak_dbfs, row[0]))
        return True

    def fail_job(self, jid: str, reason: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET state = 'failed', finished = ?, error = ? WHERE id = ?", (now(), reason, jid))
            c.execute("UPDATE sessions SET status = 'failed', error = ? WHERE id = (SELECT session_id FROM jobs "
                      "WHERE id = ?)", (reason, jid))

    def recover_interrupted(self, max_attempts: int, audio_exists: Callable[[str | None], bool]) -> list[dict]:
        """Jobs left ``running`` by a process that died: queued again while attempts remain and their audio is
        there, otherwise failed with the reason. Returns what was done, one dict per job."""
        done = []
        for row in self._all("SELECT j.id, j.attempts, s.audio FROM jobs j JOIN sessions s ON s.id = j.session_id "
                             "WHERE j.state = 'running'"):
            if not audio_exists(row["audio"]):
                reason = "interrupted: the server stopped during the analysis and the upload is no longer there"
            elif row["attempts"] >= max_attempts:
                reason = (f"interrupted {row['attempts']} time(s): the server stopped during the analysis each "
                          "time; not retried again")
            else:
                with self._tx() as c:
                    c.execute("UPDATE jobs SET state = 'queued', progress = 0, started = NULL WHERE id = ?",
                              (row["id"],))
                    c.execute("UPDATE sessions SET status = 'queued' WHERE id = (SELECT session_id FROM jobs "
                              "WHERE id = ?)", (row["id"],))
                done.append({"job": row["id"], "action": "requeued", "attempts": row["attempts"]})
                continue
            self.fail_job(row["id"], reason)
            done.append({"job": row["id"], "action": "failed", "reason": reason})
        return done


class _Transaction:
    """``with store._tx() as cursor``: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), under the store's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock):
        self.conn, self.lock = conn, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()


def _decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is not None:
        row["summary"] = json.loads(row["summary"]) if row.get("summary") else None
        row["has_audio"] = bool(row.get("has_audio"))
    return row
