"""SQLite storage of the service: tokens (hashes only), people, sessions and analysis jobs.

One connection in WAL mode (readers never wait for the job thread's writes) shared by the request threads and
the job thread under a lock; every change is one transaction. The schema carries a version; :data:`MIGRATIONS`
lists the steps from each older version, and a new database is built by running them from version 1, so the
upgrade path is the path every database takes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import unicodedata
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from serkit.errors import SerkitError

#: The schema this code reads and writes.
SCHEMA_VERSION = 3

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
    # Version 3: token ids are never reused (AUTOINCREMENT: a new token can never inherit a deleted one's people),
    # and tokens can expire and be revoked. SQLite cannot add AUTOINCREMENT to a table, so the table is rebuilt
    # (foreign keys are off while it is: see FOREIGN_KEYS_OFF); every token keeps its id.
    3: ["CREATE TABLE tokens_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, "
        "created TEXT NOT NULL, expires TEXT, revoked TEXT)",
        "INSERT INTO tokens_v3 (id, name, hash, created) SELECT id, name, hash, created FROM tokens",
        "DROP TABLE tokens",
        "ALTER TABLE tokens_v3 RENAME TO tokens",
        "CREATE INDEX sessions_created ON sessions(created)",
        "CREATE INDEX jobs_token ON jobs(token_id, state)",
        # a person's voice profile (a speaker embedding: personal data, never returned by the API) and whether
        # each session's voices matched it
        "ALTER TABLE people ADD COLUMN voice BLOB",
        "ALTER TABLE people ADD COLUMN voice_seconds REAL",
        "ALTER TABLE people ADD COLUMN voice_source TEXT",
        "ALTER TABLE sessions ADD COLUMN voice TEXT"],
}

#: Migrations that rebuild a table others refer to: run with foreign-key enforcement off (it cannot be switched
#: inside a transaction), then checked with ``PRAGMA foreign_key_check`` before they commit.
FOREIGN_KEYS_OFF = {3}

#: Job states; ``queued`` and ``running`` count against the queue bound.
ACTIVE_STATES = ("queued", "running")


def now() -> str:
    return _iso(datetime.now(timezone.utc))


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


#: Unicode categories stripped from every name shown or stored: controls (Cc), and format characters (Cf: bidi
#: overrides and isolates, zero-width joiners), which can make a name display as something else.
STRIPPED_CATEGORIES = ("Cc", "Cf")


def clean_name(text: str | None) -> str:
    """A name as stored and shown: without control and format characters, surrounding spaces stripped."""
    return "".join(ch for ch in (text or "") if unicodedata.category(ch) not in STRIPPED_CATEGORIES).strip()


def private_files(db: Path) -> None:
    """The database and its WAL files readable by their owner only, whatever the umask was."""
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            os.chmod(path, 0o600)


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
        # deleted rows are overwritten with zeros, not left readable in free pages (checkpoint() clears the WAL)
        self.conn.execute("PRAGMA secure_delete=ON")
        self.migrate()
        private_files(self.path)

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
                keys_off = target in FOREIGN_KEYS_OFF
                if keys_off:
                    self.conn.execute("PRAGMA foreign_keys=OFF")
                try:
                    with self._tx() as c:
                        for statement in MIGRATIONS[target]:
                            c.execute(statement)
                        broken = c.execute("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise SerkitError(f"{self.path}: migration to version {target} would break "
                                              f"{len(broken)} reference(s); the database is left as it was")
                        c.execute("UPDATE schema_version SET version = ?", (target,))
                finally:
                    if keys_off:
                        self.conn.execute("PRAGMA foreign_keys=ON")

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
    def create_token(self, name: str, *, expires_days: float | None = None) -> str:
        """A new token for ``name`` (valid for ``expires_days``, or until revoked); the secret is returned once and
        only its hash is stored."""
        name = clean_name(name)
        if not name:
            raise SerkitError("--create-token: give the token a name (who or what uses it)")
        if expires_days is not None and not expires_days > 0:
            raise SerkitError(f"--token-expires-days: expected a positive number of days, got {expires_days}")
        secret = "sk-" + secrets.token_urlsafe(32)
        expires = None if expires_days is None else _iso(datetime.now(timezone.utc) + timedelta(days=expires_days))
        with self._tx() as c:
            c.execute("INSERT INTO tokens (name, hash, created, expires) VALUES (?, ?, ?, ?)",
                      (name, hash_token(secret), now(), expires))
        return secret

    def token_for(self, secret: str) -> dict[str, Any] | None:
        """The token with this secret while it is valid (not revoked, not expired), else None."""
        return self._one("SELECT id, name FROM tokens WHERE hash = ? AND revoked IS NULL AND "
                         "(expires IS NULL OR expires > ?)", (hash_token(secret), now()))

    def tokens(self) -> list[dict[str, Any]]:
        """Every token (never its secret): id, name, created, expires, revoked, and how much data it owns."""
        return self._all("SELECT t.id, t.name, t.created, t.expires, t.revoked, "
                         "(SELECT COUNT(*) FROM people p WHERE p.token_id = t.id) AS people, "
                         "(SELECT COUNT(*) FROM sessions s WHERE s.token_id = t.id) AS sessions "
                         "FROM tokens t ORDER BY t.id")

    def revoke_tokens(self, name: str) -> int:
        """Revoke every valid token named ``name``: they get 401 from the next request on; their data stays
        theirs (:meth:`delete_token_data` removes it). Returns how many were revoked."""
        with self._tx() as c:
            return c.execute("UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL",
                             (now(), clean_name(name))).rowcount

    def delete_token_data(self, name: str) -> tuple[list[str], list[str]]:
        """Delete the people, sessions and jobs of the revoked or expired tokens named ``name`` (valid tokens are
        refused: revoke them first). Returns (session ids, audio file names) whose files go next; the token rows
        stay, so their ids are never taken again."""
        name = clean_name(name)
        with self._tx() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM tokens WHERE name = ? AND (revoked IS NOT NULL OR "
                                           "(expires IS NOT NULL AND expires <= ?))", (name, now()))]
            valid = c.execute("SELECT COUNT(*) FROM tokens WHERE name = ? AND revoked IS NULL AND (expires IS NULL "
                              "OR expires > ?)", (name, now())).fetchone()[0]
            if not ids:
                raise SerkitError(f"--delete-token-data: no revoked or expired token named {name!r}"
                                  + (" (it is still valid: --revoke-token it first)" if valid else ""))
            marks = ",".join("?" * len(ids))
            rows = c.execute(f"SELECT id, audio FROM sessions WHERE token_id IN ({marks})", ids).fetchall()
            c.execute(f"DELETE FROM jobs WHERE token_id IN ({marks})", ids)
            c.execute(f"DELETE FROM sessions WHERE token_id IN ({marks})", ids)
            people = [r[0] for r in c.execute(f"SELECT id FROM people WHERE token_id IN ({marks})", ids)]
            c.execute(f"DELETE FROM people WHERE token_id IN ({marks})", ids)
        self.checkpoint()
        return [r[0] for r in rows] + [f"person:{p}" for p in people], [r[1] for r in rows if r[1]]

    def checkpoint(self) -> None:
        """Copy the WAL into the database and empty it, so that what was deleted does not linger in it."""
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- people --------------------------------------------------------------------------------------
    def create_person(self, token_id: int, name: str) -> dict[str, Any]:
        pid = new_id()
        with self._tx() as c:
            c.execute("INSERT INTO people (id, token_id, name, created) VALUES (?, ?, ?, ?)",
                      (pid, token_id, name, now()))
        return self.person(token_id, pid)

    _PERSON_COLS = ("p.id, p.name, p.created, (SELECT COUNT(*) FROM sessions s WHERE s.person_id = p.id) AS sessions, "
                    "p.voice IS NOT NULL AS has_voice, p.voice_seconds, p.voice_source")

    def person(self, token_id: int, pid: str) -> dict[str, Any] | None:
        """A person as the API shows them: never their voice profile itself, only whether there is one."""
        row = self._one(f"SELECT {self._PERSON_COLS} FROM people p WHERE p.id = ? AND p.token_id = ?", (pid, token_id))
        if row is not None:
            row["has_voice"] = bool(row["has_voice"])
        return row

    def people(self, token_id: int) -> list[dict[str, Any]]:
        rows = self._all(f"SELECT {self._PERSON_COLS} FROM people p WHERE p.token_id = ? ORDER BY p.created, p.name",
                         (token_id,))
        for row in rows:
            row["has_voice"] = bool(row["has_voice"])
        return rows

    def set_voice(self, token_id: int, pid: str, embedding: np.ndarray | None, seconds: float | None = None,
                  source: str | None = None) -> bool:
        """Store (or with None delete) a person's voice profile; False when the person is not the token's."""
        blob = None if embedding is None else np.asarray(embedding, dtype="<f4").tobytes()
        with self._tx() as c:
            done = c.execute("UPDATE people SET voice = ?, voice_seconds = ?, voice_source = ? WHERE id = ? AND "
                             "token_id = ?", (blob, None if blob is None else seconds,
                                              None if blob is None else source, pid, token_id)).rowcount > 0
        if embedding is None:
            self.checkpoint()
        return done

    def person_row(self, pid: str) -> dict[str, Any] | None:
        """A person's id and name (the job thread's; any token)."""
        return self._one("SELECT id, name FROM people WHERE id = ?", (pid,))

    def voice_of(self, pid: str) -> np.ndarray | None:
        """A person's voice profile (the job thread's; any token)."""
        row = self._one("SELECT voice FROM people WHERE id = ?", (pid,))
        return None if row is None or row["voice"] is None else np.frombuffer(row["voice"], dtype="<f4").copy()

    def set_session_voice(self, sid: str, voice: dict[str, Any] | None) -> None:
        with self._tx() as c:
            c.execute("UPDATE sessions SET voice = ? WHERE id = ?", (None if voice is None else json.dumps(voice), sid))

    def delete_person(self, token_id: int, pid: str) -> list[str] | None:
        """Delete a person with their sessions and jobs; returns the session ids (their files go next)."""
        with self._tx() as c:
            if c.execute("SELECT 1 FROM people WHERE id = ? AND token_id = ?", (pid, token_id)).fetchone() is None:
                return None
            sids = [r[0] for r in c.execute("SELECT id FROM sessions WHERE person_id = ?", (pid,))]
            c.execute("DELETE FROM people WHERE id = ?", (pid,))  # sessions and jobs cascade
        self.checkpoint()
        return sids

    # -- sessions and jobs ---------------------------------------------------------------------------
    def create_session(self, token_id: int, pid: str, *, date: str, recording: str, audio: str,
                       config: dict[str, Any], queue_size: int, token_share: int | None = None
                       ) -> tuple[dict[str, Any], dict[str, Any]] | str:
        """A session and its queued analysis job; or, when the queue has no room, why not ("queue", or "share":
        ``token_share`` jobs of this token are already active)."""
        sid, jid, t = new_id(), new_id(), now()
        with self._tx() as c:
            full = self._queue_full(c, token_id, queue_size, token_share)
            if full:
                return full
            c.execute("INSERT INTO sessions (id, person_id, token_id, date, recording, status, audio, created) "
                      "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)", (sid, pid, token_id, date, recording, audio, t))
            c.execute("INSERT INTO jobs (id, session_id, token_id, state, config, created) VALUES "
                      "(?, ?, ?, 'queued', ?, ?)", (jid, sid, token_id, json.dumps(config), t))
        return self.session(token_id, sid), self.job(token_id, jid)

    _SESSION_COLS = ("s.id, s.person_id, s.date, s.recording, s.status, s.summary, s.error, s.created, s.peak_dbfs, "
                     "s.voice, s.audio IS NOT NULL AS has_audio, j.id AS job_id")

    def session(self, token_id: int | None, sid: str) -> dict[str, Any] | None:
        """A session (``token_id`` None: any token's, for the job thread)."""
        where, args = ("s.id = ?", (sid,)) if token_id is None else ("s.id = ? AND s.token_id = ?", (sid, token_id))
        return _decode(self._one(f"SELECT {self._SESSION_COLS} FROM sessions s LEFT JOIN jobs j "
                                 f"ON j.session_id = s.id WHERE {where}", args))

    def sessions(self, token_id: int, pid: str) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._all(
            f"SELECT {self._SESSION_COLS} FROM sessions s LEFT JOIN jobs j ON j.session_id = s.id "
            "WHERE s.person_id = ? AND s.token_id = ? ORDER BY s.date, s.created", (pid, token_id))]

    def analysed_sessions(self, pid: str) -> list[dict[str, Any]]:
        """A person's analysed sessions (any token's: for the job thread), with their summaries, in date order."""
        return [_decode(r) for r in self._all(
            f"SELECT {self._SESSION_COLS} FROM sessions s LEFT JOIN jobs j ON j.session_id = s.id "
            "WHERE s.person_id = ? AND s.status = 'done' ORDER BY s.date, s.created", (pid,))]

    def session_audio(self, sid: str) -> str | None:
        row = self._one("SELECT audio FROM sessions WHERE id = ?", (sid,))
        return row["audio"] if row else None

    def delete_session(self, token_id: int, sid: str) -> bool:
        with self._tx() as c:
            gone = c.execute("DELETE FROM sessions WHERE id = ? AND token_id = ?", (sid, token_id)).rowcount > 0
        self.checkpoint()
        return gone

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

    def active_jobs(self, token_id: int | None = None) -> int:
        """Jobs queued or running (of one token, or of all)."""
        where, args = ("", ()) if token_id is None else (" AND token_id = ?", (token_id,))
        return int(self._one(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN {ACTIVE_STATES}{where}", args)["n"])

    def queue_full(self, token_id: int, queue_size: int, token_share: int | None = None) -> str | None:
        """None when a job of ``token_id`` may be queued; else "queue" (all ``queue_size`` places are taken) or
        "share" (the token has its ``token_share`` of them)."""
        with self._lock:
            return self._queue_full(self.conn, token_id, queue_size, token_share)

    @staticmethod
    def _queue_full(c, token_id: int, queue_size: int, token_share: int | None) -> str | None:
        if c.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN {ACTIVE_STATES}").fetchone()[0] >= queue_size:
            return "queue"
        if token_share is not None and c.execute(
                f"SELECT COUNT(*) FROM jobs WHERE state IN {ACTIVE_STATES} AND token_id = ?",
                (token_id,)).fetchone()[0] >= token_share:
            return "share"
        return None

    def claim_next_job(self, *, one_per_token: bool = False) -> dict[str, Any] | None:
        """The next queued job, marked running (its attempt counted) in the same transaction. Tokens take turns:
        the queued job of the token whose last job started longest ago (or never) goes first, that token's
        oldest first, so a token with many jobs queued cannot keep another's waiting behind all of them. With
        ``one_per_token`` a token that has a job running gets no second one (the service's workers then serve
        several tokens at once)."""
        busy = (" AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.token_id = j.token_id AND r.state = 'running')"
                if one_per_token else "")
        with self._tx() as c:
            row = c.execute(f"SELECT j.id FROM jobs j WHERE j.state = 'queued'{busy} ORDER BY "
                            "(SELECT MAX(k.started) FROM jobs k WHERE k.token_id = j.token_id) IS NOT NULL, "
                            "(SELECT MAX(k.started) FROM jobs k WHERE k.token_id = j.token_id), j.created, j.rowid "
                            "LIMIT 1").fetchone()
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
        there, otherwise failed with the reason. Returns what was done, one dict per job (a failed one names its
        session's audio, ``audio``, which the caller deletes unless recordings are kept)."""
        done = []
        for row in self._all("SELECT j.id, j.attempts, j.session_id, s.audio FROM jobs j JOIN sessions s "
                             "ON s.id = j.session_id WHERE j.state = 'running'"):
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
            done.append({"job": row["id"], "action": "failed", "reason": reason, "session": row["session_id"],
                         "audio": row["audio"]})
        return done

    def referenced_audio(self) -> set[str]:
        """The upload file names some session still refers to (any other file in uploads/ is an orphan)."""
        return {r["audio"] for r in self._all("SELECT audio FROM sessions WHERE audio IS NOT NULL")}

    def expired_sessions(self, before: str) -> list[dict[str, Any]]:
        """Sessions uploaded before ``before`` (ISO time), of any token: the retention limit deletes them."""
        return self._all("SELECT s.id, s.person_id, s.audio, j.id AS job_id FROM sessions s LEFT JOIN jobs j "
                         "ON j.session_id = s.id WHERE s.created < ?", (before,))

    def delete_session_any(self, sid: str) -> bool:
        """Delete a session of any token (the retention limit)."""
        with self._tx() as c:
            gone = c.execute("DELETE FROM sessions WHERE id = ?", (sid,)).rowcount > 0
        return gone


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
        if "voice" in row:
            row["voice"] = json.loads(row["voice"]) if row.get("voice") else None
        row["has_audio"] = bool(row.get("has_audio"))
    return row
