"""The job thread: analyses uploaded recordings one at a time, in the order they were submitted.

A job's state lives in the database, so a restart finds it: queued jobs simply run, and a job left ``running``
by a killed process is queued again (while attempts remain and its upload is there) or marked failed with the
reason (:meth:`serkit.serve.store.Store.recover_interrupted`). On a clean stop (SIGTERM) the running job may
finish within the grace period; after it, the job is stopped and marked failed, saying why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from serkit.errors import SerkitError
from serkit.inference.analysis import analyze_recording, with_adaptation
from serkit.inference.api import EmotionModel
from serkit.inference.stream import AnalysisConfig
from serkit.serve.baseline import load_features, session_baseline
from serkit.serve.results import parse_date, remove_session_files, remove_tree, write_session_results
from serkit.serve.settings import ServeSettings
from serkit.serve.store import Store
from serkit.serve.voices import Voices

log = logging.getLogger("serkit.serve")

#: Seconds between progress writes to the database.
PROGRESS_EVERY = 0.5

#: Seconds between retention sweeps (``--retain-days``); one also runs at start.
RETENTION_EVERY = 600.0


class JobStopped(Exception):
    """Raised inside an analysis to stop it: its session was deleted, or the server is stopping."""


#: How much lower than the server's the job threads' CPU priority is (Linux nice steps): an hour of analysis
#: takes minutes of CPU, and /predict and the page's requests should not wait behind it.
JOB_NICE = 10


def lower_thread_priority(steps: int) -> bool:
    """Lower the calling thread's CPU priority by ``steps`` (Linux schedules threads as tasks with their own nice
    value; threads it starts later, such as torch's intra-op pool, inherit it). False where the system has no
    per-thread priority."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except (AttributeError, OSError):
        return False
    return True


class JobRunner:
    """Runs queued analysis jobs in ``settings.job_workers`` background threads (the model is shared with the
    request threads, and between them: they take turns at it batch by batch).

    With more than one worker, a token runs at most one job at a time while another token has jobs waiting: a
    token that queued hours of audio takes one worker, and the next token's job starts on another at once."""

    def __init__(self, settings: ServeSettings, store: Store, model: Callable[[], EmotionModel],
                 voices: Voices | None = None):
        self.settings, self.store, self._model = settings, store, model
        self.voices = voices
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._abort_reason: str | None = None
        self._cancelled: set[str] = set()
        self.running: set[str] = set()  # the jobs the workers are on
        self._last_retention = 0.0
        self._retention_lock = threading.Lock()
        #: Held while a job's results are committed and while a session's files are deleted, so that a delete
        #: racing with the end of its job leaves neither orphan files nor a half-deleted session.
        self.commit_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, name=f"serkit-jobs-{k}", daemon=True)
                         for k in range(settings.job_workers)]

    # -- control ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Recover from the last process (it may have been killed), then start the job threads."""
        # Result folders half-written by a killed process are never read (their names start with "."): drop them.
        for stale in [*self.settings.results_dir.glob(".*.tmp"), *self.settings.people_dir.glob("*/.*.tmp")]:
            remove_tree(stale)
        for action in self.store.recover_interrupted(self.settings.max_attempts, self.audio_exists):
            if action["action"] == "failed" and action.get("audio") and not self.settings.keep_audio:
                self._drop_audio(action["session"], self.settings.uploads_dir / action["audio"])
            log.warning("job recovered after restart", extra={"fields": {k: v for k, v in action.items()
                                                                         if k != "audio"}})
        self.sweep_orphans()
        self.apply_retention()
        for thread in self._threads:
            thread.start()

    def sweep_orphans(self) -> None:
        """Delete what a killed process left that nothing refers to: bodies half received (``incoming/``, no
        request is in flight at start) and uploads no session holds (a ``/predict`` clip, a session refused or
        deleted while the process died)."""
        for part in self.settings.incoming_dir.glob("*"):
            part.unlink(missing_ok=True)
        kept = self.store.referenced_audio()
        for upload in self.settings.uploads_dir.glob("*.upload"):
            if upload.name not in kept:
                upload.unlink(missing_ok=True)
                log.warning("orphaned upload deleted", extra={"fields": {"file": upload.name}})

    def apply_retention(self) -> None:
        """Delete the sessions uploaded more than ``retain_days`` ago, with their recordings, results and jobs
        (and the trend folders that showed them); nothing when no retention limit is set."""
        days = self.settings.retain_days
        if days is None:
            return
        self._last_retention = time.monotonic()
        before = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")
        expired = self.store.expired_sessions(before)
        for s in expired:
            if s["job_id"]:
                self.cancel(s["job_id"])
            with self.commit_lock:
                if self.store.delete_session_any(s["id"]):
                    remove_session_files(self.settings, s["id"], s["audio"], s["person_id"])
        if expired:
            self.store.checkpoint()
            log.info("retention: old sessions deleted", extra={"fields": {"sessions": len(expired),
                                                                          "retain_days": days}})

    @property
    def current(self) -> str | None:
        """A job a worker is on (None when all are idle)."""
        return next(iter(self.running), None)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) and not self._stopping.is_set()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, jid: str) -> None:
        """Stop job ``jid`` if it is running (its session is being deleted)."""
        self._cancelled.add(jid)

    def stop(self, grace: float) -> None:
        """Take no new job; let the running one finish for ``grace`` seconds, then stop it (marked failed)."""
        self._stopping.set()
        self._wake.set()
        ends = time.monotonic() + grace
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, ends - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self._abort_reason = (f"the server was stopped before the analysis finished (it waited {grace:g} s); "
                                  "upload the recording again")
            for thread in self._threads:
                thread.join(60)

    def audio_exists(self, name: str | None) -> bool:
        return bool(name) and (self.settings.uploads_dir / name).is_file()

    # -- the thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        lower_thread_priority(JOB_NICE)
        while not self._stopping.is_set():
            if self.settings.retain_days is not None and time.monotonic() - self._last_retention > RETENTION_EVERY \
                    and self._retention_lock.acquire(blocking=False):  # one worker sweeps
                try:
                    self.apply_retention()
                except Exception:  # the database went away: log, and the jobs go on
                    log.exception("retention sweep failed")
                finally:
                    self._retention_lock.release()
            try:
                job = self.store.claim_next_job(one_per_token=len(self._threads) > 1)
            except Exception:  # the database went away (a disk error): log, retry, never die silently
                log.exception("cannot read the job queue")
                time.sleep(1.0)
                continue
            if job is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self.running.add(job["id"])
            try:
                self._run(job)
            finally:
                self.running.discard(job["id"])
                self._cancelled.discard(job["id"])
                self._wake.set()  # another worker may now take a job this one's token held back

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

        limit = 60 * self.settings.max_job_minutes

        def progress(fraction: float) -> None:
            self._check(jid)
            if time.monotonic() - started > limit:
                raise JobStopped(f"the analysis took longer than this server's limit of "
                                 f"{self.settings.max_job_minutes:g} min per job (--max-job-minutes) and was stopped "
                                 f"at {100 * fraction:.0f} %")
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
            analysis = analyze_recording(audio, model, config, progress=progress, keep_features=model.adaptable)
            analysis.path = session["recording"]
            analysis.date, analysis.date_source = parse_date(session["date"]), "given at upload"
            self._check(jid)
            voice = None
            if self.voices is not None and self.voices.available:
                person = self.store.person_row(session["person_id"])
                voice = self.voices.diarize(analysis, audio, self.store.voice_of(session["person_id"]),
                                            person["name"] if person else "")
                self._check(jid)
            self._adapt_to_person(analysis, session, model)
            with self.commit_lock:  # a delete that came after the last check wins
                if jid in self._cancelled or self.store.session(None, sid) is None:
                    raise JobStopped("deleted")
                write_session_results(analysis, self.settings.results_dir, sid, model)
                summary = analysis.summary()
                self.store.finish_job(jid, summary, analysis.peak_dbfs if analysis.peak_dbfs > -1e9 else None)
                self.store.set_session_voice(sid, voice)
            log.info("job done", extra={"fields": {"job": jid, "session": sid, "seconds": round(
                time.monotonic() - started, 3), "duration_s": round(analysis.duration, 2)}})
        except JobStopped as exc:
            remove_tree(self.settings.results_dir / f".{sid}.tmp")
            if str(exc) == "deleted":
                log.info("job stopped: its session was deleted", extra={"fields": {"job": jid}})
            else:
                self.store.fail_job(jid, str(exc))
                log.warning("job stopped", extra={"fields": {"job": jid, "reason": str(exc)}})
        except SerkitError as exc:  # AudioError included: the reason names what is wrong with the recording
            reason = self.settings.without_paths(getattr(exc, "reason", None) or str(exc))
            self.store.fail_job(jid, reason)
            log.info("job failed", extra={"fields": {"job": jid, "reason": reason}})
        except Exception as exc:  # a bug must fail one job, not the thread
            log.exception("job crashed", extra={"fields": {"job": jid}})
            self.store.fail_job(jid, self.settings.without_paths(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            if audio is not None and not self.settings.keep_audio:
                self._drop_audio(sid, audio)

    def _adapt_to_person(self, analysis, session: dict, model: EmotionModel) -> None:
        """The session's adapted result beside its strict one, from the person's other analysed sessions as they
        are now (the person's trend rebuilds every baseline as sessions accumulate). A session of several voices
        gets none here: a baseline is the person's own voice, never a mix (their trend adapts their turns)."""
        if analysis.features is None or (analysis.speakers is not None and len(analysis.speakers.speakers) > 1):
            return
        others = [{"id": s["id"], "speech_s": (s["summary"] or {}).get("speech_s") or 0.0}
                  for s in self.store.analysed_sessions(session["person_id"]) if s["id"] != session["id"]
                  and ((s["summary"] or {}).get("speakers") is None or len(s["summary"]["speakers"]) <= 1)]
        features = {s["id"]: load_features(self.settings.results_dir, s["id"]) for s in others}
        rows = [*others, {"id": session["id"], "speech_s": analysis.speech_seconds}]
        b = session_baseline(model, session["id"], rows, features)
        if b.model is not None:
            with_adaptation(analysis, b.model, b.label)

    def _drop_audio(self, sid: str, audio: Path) -> None:
        with self.commit_lock:
            audio.unlink(missing_ok=True)
            if self.store.session(None, sid) is not None:
                self.store.clear_audio(sid)
