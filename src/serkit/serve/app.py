"""The ASGI app: the versioned JSON API under ``/api/v1``, the web page, health and readiness, OpenAPI docs.

Every ``/api/v1`` call needs ``Authorization: Bearer <token>`` and sees only what its token created (anything
else is 404, exactly as an id that does not exist). The page itself (``/``, ``/static``) is a static shell with
no data in it: it asks for the token and fetches everything through the API.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import soundfile as sf
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field

from serkit._version import __version__
from serkit.audio.io import open_audio
from serkit.errors import AudioError, SerkitError
from serkit.inference.analysis import analyze_recording, timeline_json
from serkit.inference.api import EmotionModel
from serkit.inference.report import GENERAL_LIMITS
from serkit.inference.stream import AnalysisConfig
from serkit.serve.limits import BodySizeLimit, RateLimiter, _reply
from serkit.serve.model import load_service_model
from serkit.serve.results import SESSION_FILES, person_trend, remove_session_files
from serkit.serve.runner import JobRunner
from serkit.serve.settings import ServeSettings
from serkit.serve.store import Store, clean_name, new_id
from serkit.serve.uploads import Upload, UploadedFile, UploadError, read_upload
from serkit.serve.voices import Voices, enrol_from_session, load_voices

log = logging.getLogger("serkit.serve")

#: Shown wherever results are: the page shows it too (the report carries the long form).
NOT_A_DIAGNOSIS = ("This is not a diagnosis. It is an automatic estimate of which emotions a voice sounds like, "
                   "made by a model with the accuracy and limits stated here; it says nothing reliable about a "
                   "person's mental health or wellbeing.")

#: The page may load only its own files and talk only to its own server; reports (inline styles, data: images)
#: are shown in sandboxed frames, which inherit this policy.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
            "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

#: Files one predict request may carry.
MAX_PREDICT_FILES = 32

#: A clip longer than this many model windows also gets per-window results in ``/predict``.
LONG_CLIP_WINDOWS = 1.5

#: Seconds a client is told to wait when the job queue is full.
QUEUE_RETRY_AFTER = 30

#: Uploads at a lower sample rate are refused: a 1 Hz header can claim hours in a few bytes, and telephone speech
#: (8 kHz) is the lowest rate emotion has been measured on.
MIN_SAMPLE_RATE = 8000

VAD_CHOICES = ("auto", "silero", "energy", "none")


class Caller(BaseModel):
    token_id: int
    name: str


class VoiceFromSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(..., min_length=1, max_length=64)
    speaker: str = Field(..., min_length=1, max_length=64, description="the voice as the session's timeline names it")


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=200, description="how the person is shown (a pseudonym is fine)")


class Service:
    """What the routes share: settings, database, rate limiter, the model once loaded, the job runner."""

    def __init__(self, settings: ServeSettings, load: Callable[[str | None], EmotionModel]):
        self.settings, self.load = settings, load
        settings.make_dirs()
        self.store = Store(settings.db_path)
        self.limiter = RateLimiter(settings.rate_limit)
        self.model: EmotionModel | None = None
        self.load_error: str | None = None
        self.voices = Voices() if settings.speakers else None
        self.runner = JobRunner(settings, self.store, lambda: self.model, self.voices)
        self.stopping = False
        # /predict's classification: its own threads, apart from the pool that answers the light routes
        self.inference = asyncio.Semaphore(settings.predict_workers)
        self.inference_pool = ThreadPoolExecutor(settings.predict_workers, thread_name_prefix="serkit-predict")

    def load_model(self) -> None:
        started = time.monotonic()
        try:
            self.model = self.load(self.settings.model)
        except Exception as exc:  # noqa: BLE001 - /readyz then answers with the reason instead of dying unseen
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("model could not be loaded", extra={"fields": {"model": self.settings.model,
                                                                      "reason": self.load_error}})
            return
        log.info("model loaded", extra={"fields": {"model": self.model.source, "labels": self.model.labels,
                                                   "seconds": round(time.monotonic() - started, 2)}})
        self.runner.start()

    def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        if self.load_error:
            return False, f"model failed to load: {self.load_error}"
        if self.model is None:
            return False, "loading the model"
        if not self.runner.alive():
            return False, "the job thread is not running"
        return True, "ready"


#: Declares the bearer scheme in the OpenAPI schema (so /docs can send a token); the check itself is the
#: gatekeeper's, before the body is read.
BEARER = HTTPBearer(auto_error=False, description="an API token from `serkit serve --create-token NAME`")


def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None) -> Caller:
    """The token's owner, as the gatekeeper found it before the body was read (401 there without a valid token,
    429 over its rate limit)."""
    found = request.scope.get("state", {}).get("caller")
    if found is None:  # a route reached without the gatekeeper (it guards every /api/ path): refuse, never guess
        raise HTTPException(401, "missing token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.token_name = found.name
    return found


def loaded_model(request: Request) -> EmotionModel:
    """The model (503 while it is loading)."""
    service: Service = request.app.state.service
    if service.model is None:
        raise HTTPException(503, f"not ready: {service.ready()[1]}", headers={"Retry-After": "5"})
    return service.model


Auth = Annotated[Caller, Depends(caller)]
Model = Annotated[EmotionModel, Depends(loaded_model)]


def _probabilities_note(model: EmotionModel) -> str:
    temperatures = [b.info.get("temperature") for b in model.pipeline.bundles]
    if all(t is not None for t in temperatures):
        return ("calibrated: the model's probabilities scaled by a temperature fitted on held-out speakers "
                "(averaged over fold models)")
    return "the model's softmax outputs (averaged over fold models); not recalibrated"


def create_app(settings: ServeSettings, load: Callable[[str | None], EmotionModel] | None = None):
    """The service's ASGI app. ``load`` turns ``settings.model`` into the model (default:
    :func:`serkit.serve.model.load_service_model` at ``settings.precision``)."""
    service = Service(settings, load or partial(load_service_model, precision=settings.precision))

    @asynccontextmanager
    async def lifespan(app):
        log.info("starting", extra={"fields": {"data_dir": str(settings.data_dir), "version": __version__,
                                               "keep_audio": settings.keep_audio}})
        loader = threading.Thread(target=service.load_model, name="serkit-model-load", daemon=True)
        loader.start()
        yield
        service.stopping = True
        log.info("stopping: no new jobs; waiting for the running one", extra={"fields": {
            "jobs": sorted(service.runner.running), "grace_s": settings.shutdown_grace}})
        await asyncio.to_thread(service.runner.stop, settings.shutdown_grace)
        service.inference_pool.shutdown(wait=False, cancel_futures=True)
        service.store.close()
        log.info("stopped")

    app = FastAPIOffline(title="serkit", version=__version__, lifespan=lifespan,
                         description="Speech emotion recognition as a service. " + NOT_A_DIAGNOSIS)
    app.state.service = service
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Gatekeeper, service=service)
    app.add_middleware(AccessLog)
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes)

    @app.exception_handler(SerkitError)
    async def serkit_error(request: Request, exc: SerkitError):
        return JSONResponse({"detail": settings.without_paths(str(exc))}, status_code=422)

    async def receive(request: Request, *, max_files: int) -> Upload:
        """The request's multipart body, spooled into the data folder within the limits (errors as HTTP)."""
        try:
            return await read_upload(request, settings.incoming_dir, max_files=max_files,
                                     max_file_bytes=settings.max_upload_bytes)
        except UploadError as exc:
            raise HTTPException(exc.status, exc.detail) from None

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("request failed", extra={"fields": {"path": request.url.path}})
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the service goes on"},
                            status_code=500)

    # -- health, docs, page -------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: the model is loaded, the job thread runs and the database answers (else 503)."""
        ok, why = service.ready()
        if ok:
            try:
                service.store.active_jobs()
            except Exception as exc:  # noqa: BLE001 - any database failure means not ready
                ok, why = False, f"database: {exc}"
        return JSONResponse({"status": why}, status_code=200 if ok else 503)  # the queue is no one else's business

    static = Path(str(resources.files("serkit.serve").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-store",
                                                            "Content-Security-Policy": PAGE_CSP})

    # -- model ----------------------------------------------------------------------------------------
    @app.get("/api/v1/model", tags=["model"])
    def model_info(_: Auth, m: Model) -> dict[str, Any]:
        """The model answering: classes, its card's measured accuracy and limits, and the notice."""
        card = m.card or {}
        return {"source": m.source, "labels": m.labels, "window_seconds": m.window_seconds,
                "summary": card.get("summary"), "headline": list(card.get("headline") or []),
                "accuracy": card.get("accuracy") or [],
                "limits": list(card.get("limits") or []) + GENERAL_LIMITS, "notice": NOT_A_DIAGNOSIS,
                "probabilities": _probabilities_note(m)}

    # -- predict --------------------------------------------------------------------------------------
    @app.post("/api/v1/predict", tags=["predict"], openapi_extra=_multipart_schema(
        {"files": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "audio clips"},
         "vad": {"type": "string", "enum": list(VAD_CHOICES), "default": "auto"}}, ["files"]))
    async def predict(request: Request, _: Auth, m: Model) -> JSONResponse:
        """Emotion of one or more clips: label, probabilities, and per-window results for long clips.

        A batch goes on past clips that fail; they are listed in ``failures``. When every clip fails the answer
        is 415 (none was audio) or 422 (audio that cannot be used: empty, silent, truncated). At most
        ``--predict-workers`` requests are classified at once, apart from the threads that answer the other
        routes; a request waits for a free one up to its deadline (``--predict-timeout``), and clips not reached
        by the deadline are answered as failures (503 when none was reached).
        """
        deadline = time.monotonic() + settings.predict_timeout
        upload = await receive(request, max_files=MAX_PREDICT_FILES)
        try:
            vad = _vad(upload.fields.get("vad"))
            files = upload.files_of("files")
            if not files:
                raise HTTPException(422, "files: the form holds no file (send one or more parts named files)")
            try:
                await asyncio.wait_for(service.inference.acquire(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise HTTPException(503, f"busy: no classifier was free within the {settings.predict_timeout:g} s "
                                         "deadline; try again", headers={"Retry-After": "5"}) from None
            try:
                body, status = await asyncio.get_running_loop().run_in_executor(
                    service.inference_pool, partial(predict_files, m, files, vad, deadline, settings))
            finally:
                service.inference.release()
        finally:
            upload.discard()
        return JSONResponse(body, status_code=status)

    # -- people ---------------------------------------------------------------------------------------
    def owned_person(who: Caller, pid: str) -> dict[str, Any]:
        person = service.store.person(who.token_id, pid)
        if person is None:
            raise HTTPException(404, f"person {pid!r}: not found")
        return person

    def owned_session(who: Caller, sid: str) -> dict[str, Any]:
        session = service.store.session(who.token_id, sid)
        if session is None:
            raise HTTPException(404, f"session {sid!r}: not found")
        return session

    @app.post("/api/v1/people", tags=["people"], status_code=201)
    def create_person(who: Auth, body: PersonIn) -> dict[str, Any]:
        """A person whose sessions are tracked (only this token sees them)."""
        name = clean_name(body.name)
        if not name:
            raise HTTPException(422, "name: empty after removing control and format characters")
        return service.store.create_person(who.token_id, name)

    @app.get("/api/v1/people", tags=["people"])
    def list_people(who: Auth) -> list[dict[str, Any]]:
        return service.store.people(who.token_id)

    @app.get("/api/v1/people/{pid}", tags=["people"])
    def get_person(who: Auth, pid: str) -> dict[str, Any]:
        return owned_person(who, pid)

    @app.delete("/api/v1/people/{pid}", tags=["people"])
    def delete_person(who: Auth, pid: str) -> dict[str, Any]:
        """Delete a person, their sessions, recordings, results and trend."""
        sessions = service.store.sessions(who.token_id, owned_person(who, pid)["id"])
        for s in sessions:
            if s["job_id"]:
                service.runner.cancel(s["job_id"])
        with service.runner.commit_lock:
            audio = [service.store.session_audio(s["id"]) for s in sessions]
            deleted = service.store.delete_person(who.token_id, pid)
            if deleted is None:
                raise HTTPException(404, f"person {pid!r}: not found")
            for sid, name in zip([s["id"] for s in sessions], audio):
                remove_session_files(settings, sid, name, pid)
        return {"deleted": pid, "sessions": deleted}

    # -- sessions and jobs ------------------------------------------------------------------------------
    @app.post("/api/v1/people/{pid}/sessions", tags=["sessions"], status_code=202,
              openapi_extra=_multipart_schema(
                  {"file": {"type": "string", "format": "binary", "description": "the recording"},
                   "date": {"type": "string", "description": "YYYY-MM-DD or YYYY-MM-DDTHH:MM; default: now"},
                   "vad": {"type": "string", "enum": list(VAD_CHOICES), "default": "auto"}}, ["file"]))
    async def create_session(request: Request, who: Auth, pid: str) -> JSONResponse:
        """Upload a recording as a session of this person: its analysis is queued as a job (id returned at once).

        Refused before the body is read: an unknown person (404), a full queue or this token's full share of it
        (429). Refused at upload: not audio (415), a sample rate under 8 kHz or unusable audio (422), a recording
        longer than ``--max-session-minutes`` by its header (413)."""
        upload = await receive(request, max_files=1)
        try:
            when = parse_session_date(upload.fields.get("date"))
            vad = _vad(upload.fields.get("vad"))
            parts = upload.files_of("file")
            if len(parts) != 1:
                raise HTTPException(422, "file: the form must hold one part named file (the recording)")
            name = display_name(parts[0].filename)
            try:
                path, info = await run_in_threadpool(accept_audio, parts[0].path, settings.uploads_dir,
                                                     check_frames=True, max_seconds=60 * settings.max_session_minutes)
            except UploadRejected as exc:
                raise HTTPException(exc.status, f"file {name!r}: {exc.detail}") from None
        finally:
            upload.discard()
        created = service.store.create_session(who.token_id, pid, date=when, recording=name, audio=path.name,
                                               config={"analysis": {"vad": vad}}, queue_size=settings.queue_size,
                                               token_share=settings.token_share)
        if isinstance(created, str):
            path.unlink(missing_ok=True)
            raise queue_full(created, settings)
        session, job = created
        service.runner.wake()
        log.info("job queued", extra={"fields": {"job": job["id"], "session": session["id"],
                                                 "duration_s": round(info.duration, 1)}})
        return JSONResponse({"session": session, "job": job}, status_code=202)

    # -- a person's voice ---------------------------------------------------------------------------------
    def voices_or_501() -> Voices:
        if service.voices is None or not service.voices.available:
            why = "the server runs with --no-speakers" if service.voices is None else service.voices.error
            raise HTTPException(501, f"voice profiles need the speaker encoder: {why}")
        return service.voices

    @app.post("/api/v1/people/{pid}/voice", tags=["people"], openapi_extra=_multipart_schema(
        {"file": {"type": "string", "format": "binary", "description": "a recording of this person alone"},
         "vad": {"type": "string", "enum": list(VAD_CHOICES), "default": "auto"}}, ["file"]))
    async def enrol_voice(request: Request, who: Auth, m: Model, pid: str) -> dict[str, Any]:
        """Enrol the person's voice from a recording of them alone (a few sentences). Their sessions then count
        only the voice that matches it; a session where none does is flagged and left out of their trend. The
        profile (a speaker embedding) is stored with the person and deleted with them; it is never returned."""
        person = owned_person(who, pid)
        voices = voices_or_501()
        upload = await receive(request, max_files=1)
        try:
            vad = _vad(upload.fields.get("vad"))
            parts = upload.files_of("file")
            if len(parts) != 1:
                raise HTTPException(422, "file: the form must hold one part named file (a recording of the person)")
            try:
                path, _ = await run_in_threadpool(accept_audio, parts[0].path, settings.uploads_dir, check_frames=True,
                                                  max_seconds=600.0)
            except UploadRejected as exc:
                raise HTTPException(exc.status, f"file: {exc.detail}") from None
            try:
                profile = await run_in_threadpool(voices.enrol_file, path, m, person["name"], vad)
            except AudioError as exc:
                raise HTTPException(422, f"enrolment: {exc.reason}") from None
            finally:
                path.unlink(missing_ok=True)
        finally:
            upload.discard()
        service.store.set_voice(who.token_id, pid, profile.embedding, profile.seconds, "enrolment recording")
        return owned_person(who, pid)

    @app.post("/api/v1/people/{pid}/voice/from-session", tags=["people"])
    def voice_from_session(who: Auth, pid: str, body: VoiceFromSession) -> dict[str, Any]:
        """Make the person's voice profile from one of their sessions' voices that the user confirms is theirs
        (``speaker`` as the session's timeline names it, e.g. ``S1``)."""
        owned_person(who, pid)
        session = owned_session(who, body.session_id)
        if session["person_id"] != pid:
            raise HTTPException(404, f"session {body.session_id!r}: not found among this person's sessions")
        try:
            embedding = enrol_from_session(load_voices(settings.results_dir, session["id"]), body.speaker)
        except AudioError as exc:
            raise HTTPException(422, f"speaker: {exc.reason}") from None
        service.store.set_voice(who.token_id, pid, embedding, None, f"confirmed voice {body.speaker} of session "
                                f"{session['date'][:10]}")
        return owned_person(who, pid)

    @app.delete("/api/v1/people/{pid}/voice", tags=["people"])
    def delete_voice(who: Auth, pid: str) -> dict[str, Any]:
        """Delete the person's voice profile: their sessions count whole again."""
        owned_person(who, pid)
        service.store.set_voice(who.token_id, pid, None)
        return owned_person(who, pid)

    @app.get("/api/v1/people/{pid}/sessions", tags=["sessions"])
    def list_sessions(who: Auth, pid: str) -> list[dict[str, Any]]:
        return service.store.sessions(who.token_id, owned_person(who, pid)["id"])

    @app.get("/api/v1/sessions/{sid}", tags=["sessions"])
    def get_session(who: Auth, sid: str) -> dict[str, Any]:
        """A session: status (queued, running, done, failed, recording_deleted), summary when done."""
        session = owned_session(who, sid)
        session["job"] = service.store.job(who.token_id, session["job_id"]) if session["job_id"] else None
        session["files"] = ({n: f"/api/v1/sessions/{sid}/files/{n}" for n in SESSION_FILES}
                            if session["status"] == "done" else {})
        # summary["adapted"] is the result adapted to the person's other sessions when it was analysed;
        # "baseline" says what the person's baseline gives this session now (the trend's figures)
        session["baseline"] = None
        if session["status"] == "done" and service.model is not None:
            session["baseline"] = trend(who, session["person_id"], service.model)["baselines"].get(sid)
        return session

    @app.get("/api/v1/sessions/{sid}/files/{name}", tags=["sessions"])
    def session_file(who: Auth, sid: str, name: str) -> FileResponse:
        """One result file of an analysed session: timeline.json, timeline.csv, timeline.png or report.html."""
        session = owned_session(who, sid)
        if name not in SESSION_FILES:  # a fixed list: the name never reaches the file system otherwise
            raise HTTPException(404, f"{name!r}: not a result file (one of {', '.join(SESSION_FILES)})")
        path = settings.results_dir / session["id"] / name
        if session["status"] != "done" or not path.is_file():
            raise HTTPException(404, f"session {sid!r} has no results yet (status {session['status']})")
        return FileResponse(path, media_type=SESSION_FILES[name], headers=_private(name))

    @app.delete("/api/v1/sessions/{sid}", tags=["sessions"])
    def delete_session(who: Auth, sid: str) -> dict[str, Any]:
        """Delete a session with its recording, results and job (a running job is stopped)."""
        session = owned_session(who, sid)
        if session["job_id"]:
            service.runner.cancel(session["job_id"])
        with service.runner.commit_lock:
            audio = service.store.session_audio(sid)
            if not service.store.delete_session(who.token_id, sid):
                raise HTTPException(404, f"session {sid!r}: not found")
            remove_session_files(settings, sid, audio, session["person_id"])
        return {"deleted": sid}

    @app.delete("/api/v1/sessions/{sid}/recording", tags=["sessions"])
    def delete_recording(who: Auth, sid: str) -> dict[str, Any]:
        """Delete a session's recording and everything derived from it (timeline, plots, report); the session
        stays as a dated entry without results and leaves the trend."""
        session = owned_session(who, sid)
        if session["job_id"]:
            service.runner.cancel(session["job_id"])
        with service.runner.commit_lock:
            audio = service.store.session_audio(sid)
            if not service.store.forget_recording(who.token_id, sid):
                raise HTTPException(404, f"session {sid!r}: not found")
            if session["status"] in ("queued", "running") and session["job_id"]:
                service.store.fail_job(session["job_id"], "its recording was deleted")
                service.store.forget_recording(who.token_id, sid)
            remove_session_files(settings, sid, audio, session["person_id"])
        return {"deleted": f"recording of session {sid}"}

    @app.get("/api/v1/sessions/{sid}/recording", tags=["sessions"])
    def get_recording(who: Auth, sid: str) -> FileResponse:
        """The uploaded audio, while it is kept (``--keep-audio``, or until its analysis ends)."""
        owned_session(who, sid)
        name = service.store.session_audio(sid)
        if not name or not (settings.uploads_dir / name).is_file():
            raise HTTPException(404, f"session {sid!r}: the recording is not kept (only results are stored unless "
                                     "the server runs with --keep-audio)")
        return FileResponse(settings.uploads_dir / name, media_type="application/octet-stream",
                            headers=_private("recording"))

    @app.get("/api/v1/jobs/{jid}", tags=["sessions"])
    def get_job(who: Auth, jid: str) -> dict[str, Any]:
        """An analysis job: state, progress (0-1), the reason when failed, its session."""
        job = service.store.job(who.token_id, jid)
        if job is None:
            raise HTTPException(404, f"job {jid!r}: not found")
        return job

    # -- trend ---------------------------------------------------------------------------------------------
    def trend(who: Caller, pid: str, m: EmotionModel) -> dict[str, Any]:
        person = owned_person(who, pid)
        return person_trend(settings.people_dir, settings.results_dir, pid, service.store.sessions(who.token_id, pid),
                            m, profile=service.store.voice_of(pid), person=person["name"])

    @app.get("/api/v1/people/{pid}/trend", tags=["people"])
    def get_trend(who: Auth, pid: str, m: Model) -> dict[str, Any]:
        """A person's analysed sessions in date order: shares per emotion, negative share, arousal, valence; and
        beside them (``adapted_*`` columns, ``adapted`` naming what they were adapted to) the same adapted to the
        person's other sessions, where their baseline is used. ``baseline`` says whether it is used and why not;
        ``baselines`` says it per session. Adapted figures are adapted results, never strict ones."""
        t = trend(who, pid, m)
        folder = t.pop("folder")
        t["files"] = ({"trend.png": f"/api/v1/people/{pid}/trend.png",
                       "report.html": f"/api/v1/people/{pid}/report.html"} if folder else {})
        t["notice"] = NOT_A_DIAGNOSIS
        return t

    @app.get("/api/v1/people/{pid}/trend.png", tags=["people"])
    def get_trend_png(who: Auth, pid: str, m: Model) -> FileResponse:
        return trend_file(who, pid, m, "trend.png")

    @app.get("/api/v1/people/{pid}/report.html", tags=["people"])
    def get_person_report(who: Auth, pid: str, m: Model) -> FileResponse:
        """The HTML report across the person's sessions (trend first, then each session)."""
        return trend_file(who, pid, m, "report.html")

    def trend_file(who: Caller, pid: str, m: EmotionModel, name: str) -> FileResponse:
        folder = trend(who, pid, m)["folder"]
        if folder is None:
            raise HTTPException(404, f"person {pid!r} has no analysed session yet")
        return FileResponse(folder / name, media_type="image/png" if name.endswith(".png") else "text/html",
                            headers=_private(name))

    return app


def _private(name: str) -> dict[str, str]:
    # Results are personal: no shared caches; HTML reports are shown sandboxed (no scripts) even when opened alone.
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if name.endswith(".html"):
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return headers


def queue_full(kind: str, settings: ServeSettings) -> HTTPException:
    """429 for a full queue ("queue") or a token's full share of it ("share")."""
    detail = ("the analysis queue is full; try again later" if kind == "queue" else
              f"this token already has {settings.token_share} analysis job(s) queued or running, its share of the "
              "queue; wait for one to finish")
    return HTTPException(429, detail, headers={"Retry-After": str(QUEUE_RETRY_AFTER)})


class UploadRejected(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def display_name(filename: str | None) -> str:
    """The client's file name, only ever shown (never a path): last component, no control or format characters
    (bidi overrides, zero-width joiners: they can make a name display as another), short."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = clean_name(name)[:120]
    return name or "recording"


def accept_audio(part: Path, folder: Path, *, check_frames: bool = False,
                 max_seconds: float | None = None) -> tuple[Path, Any]:
    """Move an uploaded part to ``folder/<random>.upload`` once libsndfile recognises it as audio by its content.

    Raises :class:`UploadRejected`: 400 for an empty upload, 415 for anything libsndfile does not read as audio,
    422 for a sample rate under :data:`MIN_SAMPLE_RATE` or (``check_frames``) audio that cannot be analysed
    (truncated, no frames), 413 when its header says it lasts longer than ``max_seconds``.
    """
    path = folder / f"{new_id()}.upload"
    try:
        part.replace(path)
        if path.stat().st_size == 0:
            raise UploadRejected(400, "empty upload (0 bytes)")
        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            detail = getattr(exc, "error_string", None) or str(exc)
            detail = detail.replace(str(path), "the upload")
            raise UploadRejected(415, f"not audio that libsndfile can read ({detail}); send WAV, FLAC, Ogg "
                                      "(Vorbis/Opus), MP3 or another libsndfile format") from None
        if info.samplerate < MIN_SAMPLE_RATE:
            raise UploadRejected(422, f"sample rate {info.samplerate} Hz: serkit needs at least {MIN_SAMPLE_RATE} Hz "
                                      "(speech below 8 kHz has lost what emotion is heard in)")
        if max_seconds is not None and info.duration > max_seconds:
            raise UploadRejected(413, f"{info.duration / 60:.0f} min long by its header: this server takes "
                                      f"recordings up to {max_seconds / 60:g} min (--max-session-minutes)")
        if check_frames:
            try:
                open_audio(path).close()
            except AudioError as exc:
                raise UploadRejected(422, exc.reason) from None
        if info.frames <= 0:
            raise UploadRejected(422, "empty: the file holds no audio frames")
        return path, info
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def predict_files(m: EmotionModel, files: list[UploadedFile], vad: str, deadline: float,
                  settings: ServeSettings) -> tuple[dict[str, Any], int]:
    """``/predict``'s answer for uploaded parts, one clip at a time until ``deadline`` (time.monotonic): the
    answer body and its status."""
    predictions: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    kinds: list[int] = []
    for k, part in enumerate(files):
        name = display_name(part.filename)
        if time.monotonic() > deadline:
            late = [display_name(f.filename) for f in files[k:]]
            failures += [{"file": n, "reason": f"not analysed: the request ran past its {settings.predict_timeout:g} s "
                                             "deadline (--predict-timeout); send fewer or shorter clips"} for n in late]
            kinds += [503] * len(late)
            break
        try:
            path, info = accept_audio(part.path, settings.uploads_dir)
        except UploadRejected as exc:
            failures.append({"file": name, "reason": exc.detail})
            kinds.append(exc.status)
            continue
        try:
            if info.duration > settings.predict_max_seconds:
                failures.append({"file": name, "reason": f"{info.duration:.0f} s long: /predict takes clips up to "
                                 f"{settings.predict_max_seconds:g} s; submit longer recordings as a session "
                                 "(an analysis job)"})
                kinds.append(413)
                continue
            result = m.predict_batch([path], vad=vad)
            if result.failures:
                failures.append({"file": name, "reason": result.failures[0][1]})
                kinds.append(422)
                continue
            proba = result.proba[0]
            item = {"file": name, "label": m.labels[int(proba.argmax())], "confidence": round(float(proba.max()), 5),
                    "probabilities": {lab: round(float(v), 5) for lab, v in zip(m.labels, proba)},
                    "duration_s": round(info.duration, 3), "windows": None}
            if item["duration_s"] > LONG_CLIP_WINDOWS * m.window_seconds:
                tl = timeline_json(analyze_recording(path, m, AnalysisConfig(vad=vad)))
                item["windows"] = [{"start": w["start"], "end": w["end"], "probabilities": w["probabilities"],
                                    "label": max(w["probabilities"], key=w["probabilities"].get)}
                                   for w in tl["windows"]]
                item["segments"] = tl["segments"]
            predictions.append(item)
        finally:
            path.unlink(missing_ok=True)
    body = {"model": m.source, "labels": m.labels, "predictions": predictions, "failures": failures,
            "notice": NOT_A_DIAGNOSIS}
    status = 200 if predictions else (415 if kinds and all(k == 415 for k in kinds) else
                                      (max(kinds) if kinds and len(set(kinds)) == 1 else 422))
    return body, status


def _vad(value: str | None) -> str:
    value = "auto" if value is None or not value.strip() else value.strip()
    if value not in VAD_CHOICES:
        raise HTTPException(422, f"vad: expected one of {', '.join(VAD_CHOICES)}, got {value!r}")
    return value


def _multipart_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its multipart form itself (:mod:`serkit.serve.uploads`)."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}}


def parse_session_date(text: str | None) -> str:
    """The session date as stored (ISO, minutes); 422 naming the field when it cannot be read."""
    if text is None or not text.strip():
        return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="minutes")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(422, f"date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM, got {text!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="minutes")


#: Routes whose body is an upload: (method, path pattern). Sessions' person is checked before the body is read.
_PREDICT = re.compile(r"^/api/v1/predict/?$")
_SESSIONS = re.compile(r"^/api/v1/people/(?P<pid>[^/]+)/(?P<what>sessions|voice)/?$")


class Gatekeeper:
    """ASGI middleware: everything about an ``/api/`` request that can be decided before its body is read is
    decided here, so that a refused upload costs its sender nothing but the headers.

    - a missing, unknown, revoked or expired token: 401;
    - over the token's rate limit: 429 (the request is counted here, once);
    - an upload (``/predict``, a new session) while ``max_uploads`` are being received: 503;
    - a new session for a person the token does not own: 404; with the queue or the token's share full: 429.

    The caller it found is left in the request's state for the routes. Every answer under ``/api/`` also gets
    ``Cache-Control: no-store`` (unless it sets its own), ``X-Content-Type-Options: nosniff`` and
    ``Referrer-Policy: no-referrer``.
    """

    def __init__(self, app, service: Service):
        self.app, self.service = app, service
        self.uploads = 0  # bodies being received (the event loop is one thread: no lock needed)
        self.predicting: dict[int, int] = {}  # /predict requests in progress, per token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/") or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        send = _with_api_headers(send)
        service, settings = self.service, self.service.settings
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, secret = header.partition(" ")
        token = service.store.token_for(secret.strip()) if scheme.lower() == "bearer" and secret.strip() else None
        if token is None:
            return await _reply(send, 401, "missing, unknown, revoked or expired token: send Authorization: Bearer "
                                           "<token> (serkit serve --create-token NAME prints one)",
                                [(b"www-authenticate", b"Bearer")])
        wait = service.limiter.take(token["id"])
        if wait:
            return await _reply(send, 429, f"rate limit: at most {settings.rate_limit} requests a minute per token",
                                [(b"retry-after", str(int(wait)).encode())])
        scope.setdefault("state", {})["caller"] = Caller(token_id=token["id"], name=token["name"])
        upload = scope["method"] == "POST" and (_PREDICT.match(scope["path"]) or _SESSIONS.match(scope["path"]))
        if not upload:
            return await self.app(scope, receive, send)
        session = _SESSIONS.match(scope["path"])
        predicting = self.predicting.get(token["id"], 0)
        if not session and predicting >= settings.token_predicts:
            return await _reply(send, 429, f"this token already has {predicting} /predict request(s) in progress "
                                           "(its share of the classifiers); wait for them", [(b"retry-after", b"2")])
        if session:
            if service.store.person(token["id"], session["pid"]) is None:
                return await _reply(send, 404, f"person {session['pid']!r}: not found")
            full = session["what"] == "sessions" and service.store.queue_full(token["id"], settings.queue_size,
                                                                                settings.token_share)
            if full:
                error = queue_full(full, settings)
                return await _reply(send, 429, error.detail, [(b"retry-after", str(QUEUE_RETRY_AFTER).encode())])
        if self.uploads >= settings.max_uploads:
            return await _reply(send, 503, f"busy: {settings.max_uploads} uploads are being received; try again",
                                [(b"retry-after", b"2")])
        self.uploads += 1
        if not session:
            self.predicting[token["id"]] = predicting + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.uploads -= 1
            if not session:
                self.predicting[token["id"]] -= 1
                if not self.predicting[token["id"]]:
                    del self.predicting[token["id"]]


#: Set on every API answer: nothing personal is cached, types are not sniffed, no referrer leaves the page.
API_HEADERS = {b"cache-control": b"no-store", b"x-content-type-options": b"nosniff",
               b"referrer-policy": b"no-referrer"}


def _with_api_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []),
                                              *((k, v) for k, v in API_HEADERS.items() if k not in present)]}
        await send(message)
    return wrapped


class AccessLog:
    """ASGI middleware: one JSON log line per request (method, path, status, milliseconds, token name)."""

    def __init__(self, app):
        self.app = app
        self.log = logging.getLogger("serkit.serve.access")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state = scope.get("state") or {}
            self.log.info("request", extra={"fields": {
                "method": scope["method"], "path": scope["path"], "status": status[0],
                "ms": round(1000 * (time.monotonic() - started), 1), "token": state.get("token_name"),
                "client": (scope.get("client") or ["?"])[0]}})

