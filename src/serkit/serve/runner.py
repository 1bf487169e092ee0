"""The job thread: analyses uploaded recordings one at a time, in the order they were submitted.

A job's state lives in the database, so a restart finds it: queued jobs simply run, and a job left ``running``
by a killed process is queued again (while attempts remain and its upload is there) or marked failed with the
reason (:meth:`serkit.serve.store.Store.recover_interrupted`). On a clean stop (SIGTERM) the running job may
finish within the grace period; after it, the job is stopped and marked failed, saying why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from serkit.errors import SerkitError
from serkit.inference.analysis import analyze_recording
from serkit.inference.api import EmotionModel
from serkit.inference.stream import AnalysisConfig
from serkit.serve.results import parse_date, remove_tree, write_session_results
from serkit.serve.settings import ServeSettings
from serkit.serve.store import Store

log = logging.getLogger("serkit.serve")

#: Seconds between progress writes to the database.
PROGRESS_EVERY = 0.5


class JobStopped(Exception):
    """Raised inside an analysis to stop it: its session was deleted, or the server is stopping."""


class JobRunner:
    """Runs queued analysis jobs in one background thread (the model is shared with the request threads)."""

    def __init__(self, settings: ServeSettings, store: Store, model: Callable[[], EmotionModel]):
        self.settings, self.store, self._model = settings, store, model
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._abort_reason: str | None = None
        self._cancelled: set[str] = set()
        self.current: str | None = None
        #: Held while a job's results are committed and while a session's files are deleted, so that a delete
        #: racing with the end of its job leaves neither orphan files nor a half-deleted session.
        self.commit_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="serkit-jobs", daemon=True)

    # -- control ------------------------------------------------------------------------------------
    def start(self) -> None:
        # Result folders half-written by a killed process are never read (their names start with "."): drop them.
        for stale in [*self.settings.results_dir.glob(".*.tmp"), *self.settings.people_dir.glob("*/.*.tmp")]:
            remove_tree(stale)
        for action in self.store.recover_interrupted(self.settings.max_attempts, self.audio_exists):
            log.warning("job recovered after restart", extra={"fields": action})
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, jid: str) -> None:
        """Stop job ``jid`` if it is running (its session is being deleted)."""
        self._cancelled.add(jid)

    def stop(self, grace: float) -> None:
        """Take no new job; let the running one finish for ``grace`` seconds, then stop it (marked failed)."""
        self._stopping.set()
        self._wake.set()
        if not self._thread.is_alive():
            return
        self._thread.join(grace)
        if self._thread.is_alive():
            self._abort_reason = (f"the server was stopped before the analysis finished (it waited {grace:g} s); "
                                  "upload the recording again")
            self._thread.join(60)

    def audio_exists(self, name: str | None) -> bool:
        return bool(name) and (self.settings.uploads_dir / name).is_file()

    # -- the thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next_job()
            except Exception:  # the database went away (a disk error): log, retry, never die silently
                log.exception("cannot read the job queue")
                time.sleep(1.0)
                continue
            if job is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self.current = job["id"]
            try:
                self._run(job)
            finally:
                self.current = None
                self._cancelled.discard(job["id"])

    def _check(self, jid: str) -> None:
        if jid in self._cancelled:
            raise JobStopped("deleted")
        if self._abort_reason is not None:
            raise JobStopped(self._abort_reason)

    def _run(self, job: dict) -> None:
        jid, sid = job["id"], job["session_id"]
        started = time.monotonic()
        session = self.store.session(None, sid)
        audio_name = self.store.session_audio(sid)
        audio = self.settings.uploads_dir / audio_name if audio_name else None
        log.info("job started", extra={"fields": {"job": jid, "session": sid, "attempt": job["attempts"]}})
        last = [0.0]

        def progress(fraction: float) -> None:
            self._check(jid)
            if time.monotonic() - last[0] >= PROGRESS_EVERY:
                last[0] = time.monotonic()
                self.store.set_progress(jid, min(fraction, 0.99))

        try:
            if session is None:
                raise JobStopped("deleted")
            if audio is None or not audio.is_file():
                raise SerkitError("the uploaded recording is no longer there (deleted before it was analysed)")
            model = self._model()
            config = AnalysisConfig(**job["config"].get("analysis", {}))
            analysis = analyze_recording(audio, model, config, progress=progress)
            analysis.path = session["recording"]
            analysis.date, analysis.date_source = parse_date(session["date"]), "given at upload"
            self._check(jid)
            with self.commit_lock:  # a delete that came after the last check wins
                if jid in self._cancelled or self.store.session(None, sid) is None:
                    raise JobStopped("deleted")
                write_session_results(analysis, self.settings.results_dir, sid, model)
                summary = analysis.summary()
                self.store.finish_job(jid, summary, analysis.peak_dbfs if analysis.peak_dbfs > -1e9 else None)
            log.info("job done", extra={"fields": {"job": jid, "session": sid, "seconds": round(
                time.monotonic() - started, 3), "duration_s": round(analysis.duration, 2)}})
        except JobStopped as exc:
            remove_tree(self.settings.results_dir / f".{sid}.tmp")
            if str(exc) == "deleted":
                log.info("job stopped: its session was deleted", extra={"fields": {"job": jid}})
            else:
                self.store.fail_job(jid, str(exc))
                log.warning("job stopped by shutdown", extra={"fields": {"job": jid, "reason": str(exc)}})
        except SerkitError as exc:  # AudioError included: the reason names what is wrong with the recording
            reason = getattr(exc, "reason", None) or str(exc)
            self.store.fail_job(jid, reason)
            log.info("job failed", extra={"fields": {"job": jid, "reason": reason}})
        except Exception as exc:  # a bug must fail one job, not the thread
            log.exception("job crashed", extra={"fields": {"job": jid}})
            self.store.fail_job(jid, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if audio is not None and not self.settings.keep_audio:
                self._drop_audio(sid, audio)

    def _drop_audio(self, sid: str, audio: Path) -> None:
        with self.commit_lock:
            audio.unlink(missing_ok=True)
            if self.store.session(None, sid) is not None:
                self.store.clear_audio(sid)
