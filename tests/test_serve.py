"""serkit serve: the API through FastAPI's test client (auth, ownership, uploads, jobs, limits, storage)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import tone
from serkit.cli import app as cli_app
from serkit.serve.app import create_app
from serkit.serve.limits import BodySizeLimit
from serkit.serve.logs import JsonFormatter
from serkit.serve.settings import ServeSettings
from serkit.serve.store import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION, Store
from serve_helpers import SlowModel, wait_for, write_tones
from test_api import SR, TONE_LABELS


def start(tmp_path, model, **options):
    """A running service (lifespan entered, model loaded) with two tokens."""
    # the tones these tests analyse are one synthetic 'person' whose pitch changes; the speaker encoder would hear
    # the pitches as several voices, so diarization is off here and tested on its own (test_serve_voices.py)
    settings = ServeSettings(data_dir=tmp_path / "data", **{"rate_limit": 0, "speakers": False, **options})
    app = create_app(settings, load=lambda spec: model)
    client = TestClient(app)
    client.__enter__()
    wait_for(lambda: client.get("/readyz").status_code == 200, timeout=20)
    store = app.state.service.store
    a, b = store.create_token("alice"), store.create_token("bob")
    return SimpleNamespace(client=client, app=app, settings=settings, service=app.state.service, token=a,
                           a={"Authorization": f"Bearer {a}"}, b={"Authorization": f"Bearer {b}"})


@pytest.fixture
def svc(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model)
    yield s
    s.client.__exit__(None, None, None)


def wav_bytes(y: np.ndarray, sr: int = SR, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt)
    return buf.getvalue()


def person(s, headers=None, name="P"):
    r = s.client.post("/api/v1/people", headers=headers or s.a, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def submit(s, pid, path, headers=None, date="2026-03-01", vad="energy"):
    with open(path, "rb") as fh:
        return s.client.post(f"/api/v1/people/{pid}/sessions", headers=headers or s.a,
                             files={"file": (path.name, fh, "audio/wav")}, data={"date": date, "vad": vad})


def finished(s, jid, headers=None, timeout=60):
    def done():
        job = s.client.get(f"/api/v1/jobs/{jid}", headers=headers or s.a).json()
        return job if job["state"] in ("done", "failed") else None
    return wait_for(done, timeout=timeout)


# -- health, docs, page ---------------------------------------------------------------------------------
def test_health_readiness_docs_and_page_without_cdn(svc):
    c = svc.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["status"] == "ready"
    docs = c.get("/docs")
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert c.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = c.get("/openapi.json").json()["paths"]
    assert {"/api/v1/predict", "/api/v1/people/{pid}/sessions", "/api/v1/jobs/{jid}",
            "/api/v1/people/{pid}/trend"} <= set(paths)
    page = c.get("/")
    assert page.status_code == 200 and "<main" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        r = c.get(asset)
        assert r.status_code == 200
        # nothing loaded from the internet (the SVG namespace is a name, not a download)
        assert not re.search(r"https?://", r.text.replace("http://www.w3.org/2000/svg", ""))
    assert 'src="http' not in page.text and 'href="http' not in page.text


def test_readyz_is_503_until_the_model_is_loaded(tmp_path, tiny_model):
    import threading

    gate = threading.Event()

    def slow_load(spec):
        gate.wait(10)
        return tiny_model

    app = create_app(ServeSettings(data_dir=tmp_path / "d"), load=slow_load)
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "loading" in r.json()["status"]
        assert c.get("/healthz").status_code == 200
        gate.set()
        wait_for(lambda: c.get("/readyz").status_code == 200)


# -- security -------------------------------------------------------------------------------------------
def test_every_api_route_needs_a_token_and_only_its_hash_is_stored(svc):
    paths = svc.client.get("/openapi.json").json()["paths"]
    api = [(m, p) for p, ops in paths.items() if p.startswith("/api/v1") for m in ops]
    assert len(api) >= 15
    for method, path in api:
        url = path.replace("{pid}", "x").replace("{sid}", "x").replace("{jid}", "x").replace("{name}", "x")
        for headers in ({}, {"Authorization": "Bearer sk-not-a-token"}, {"Authorization": svc.token}):
            r = svc.client.request(method.upper(), url, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
    raw = svc.settings.db_path.read_bytes() + b"".join(
        p.read_bytes() for p in svc.settings.data_dir.glob("serkit.db-*"))
    assert svc.token.encode() not in raw
    db = sqlite3.connect(svc.settings.db_path)
    hashes = [r[0] for r in db.execute("SELECT hash FROM tokens")]
    assert hashlib.sha256(svc.token.encode()).hexdigest() in hashes


def test_another_tokens_ids_give_404_not_data(svc, tmp_path):
    pid = person(svc, name="Alice's participant")
    job = submit(svc, pid, write_tones(tmp_path / "r.wav", [("sad", 2.0)])).json()
    sid, jid = job["session"]["id"], job["job"]["id"]
    assert finished(svc, jid)["state"] == "done"
    c, b = svc.client, svc.b
    assert c.get("/api/v1/people", headers=b).json() == []
    for method, url in [("GET", f"/api/v1/people/{pid}"), ("GET", f"/api/v1/people/{pid}/sessions"),
                        ("GET", f"/api/v1/people/{pid}/trend"), ("GET", f"/api/v1/people/{pid}/trend.png"),
                        ("GET", f"/api/v1/people/{pid}/report.html"), ("GET", f"/api/v1/sessions/{sid}"),
                        ("GET", f"/api/v1/sessions/{sid}/files/timeline.json"), ("GET", f"/api/v1/jobs/{jid}"),
                        ("GET", f"/api/v1/sessions/{sid}/recording"), ("DELETE", f"/api/v1/sessions/{sid}/recording"),
                        ("DELETE", f"/api/v1/sessions/{sid}"), ("DELETE", f"/api/v1/people/{pid}")]:
        r = c.request(method, url, headers=b)
        assert r.status_code == 404, (method, url, r.status_code)
        assert "Alice" not in r.text and "sad" not in r.text
    with open(tmp_path / "r.wav", "rb") as fh:  # nor can bob add sessions to alice's person
        r = c.post(f"/api/v1/people/{pid}/sessions", headers=b, files={"file": ("r.wav", fh)})
    assert r.status_code == 404
    # alice's data is untouched
    assert c.get(f"/api/v1/sessions/{sid}", headers=svc.a).json()["status"] == "done"
    assert c.get(f"/api/v1/sessions/{sid}/files/timeline.png", headers=svc.a).status_code == 200


def test_upload_over_the_limit_is_413_before_the_body_is_read(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, max_upload_mb=0.5)
    try:
        big = wav_bytes(tone(20.0, SR, 450.0))  # 640 kB
        r = s.client.post("/api/v1/predict", headers=s.a, files={"files": ("big.wav", big)})
        assert r.status_code == 413 and "0.5 MB" in r.json()["detail"]
        # chunked (no Content-Length): cut off once the limit is passed
        body = (b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n" + big + b"\r\n--x--\r\n")
        r = s.client.post("/api/v1/predict", headers={**s.a, "Content-Type": "multipart/form-data; boundary=x"},
                          content=(body[i:i + 65536] for i in range(0, len(body), 65536)))
        assert r.status_code == 413
        # a body that is not an upload (JSON) has a small limit of its own
        r = s.client.post("/api/v1/people", headers={**s.a, "Content-Type": "application/json"},
                          content=b'{"name": "' + b"x" * (2 << 20) + b'"}')
        assert r.status_code == 413 and "not an upload" in r.json()["detail"]
        assert s.client.get("/healthz").status_code == 200
        assert list(s.settings.uploads_dir.iterdir()) == []
    finally:
        s.client.__exit__(None, None, None)


def test_size_limit_answers_from_the_header_without_reading():
    called = []

    async def app(scope, receive, send):  # would read the body
        called.append(True)

    async def receive():
        raise AssertionError("the body was read")

    sent = []

    async def send(message):
        sent.append(message)

    mw = BodySizeLimit(app, limit=1000)
    asyncio.run(mw({"type": "http", "headers": [(b"content-length", b"5000000000")]}, receive, send))
    assert sent[0]["status"] == 413 and not called


def test_cors_only_when_configured(svc, tmp_path, tiny_model):
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    r = svc.client.options("/api/v1/people", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    r = svc.client.get("/api/v1/people", headers={**svc.a, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    s = start(tmp_path / "cors", tiny_model, cors_origins=["https://lab.example"])
    try:
        r = s.client.options("/api/v1/people", headers={**pre, "Origin": "https://lab.example"})
        assert r.headers["access-control-allow-origin"] == "https://lab.example"
        r = s.client.options("/api/v1/people", headers=pre)
        assert "access-control-allow-origin" not in r.headers
    finally:
        s.client.__exit__(None, None, None)


def test_rate_limit_per_token_with_retry_after(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, rate_limit=3)
    try:
        codes = [s.client.get("/api/v1/people", headers=s.a).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = s.client.get("/api/v1/people", headers=s.a)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert s.client.get("/api/v1/people", headers=s.b).status_code == 200  # bob has his own bucket
    finally:
        s.client.__exit__(None, None, None)


def test_job_queue_is_bounded(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.3), queue_size=2, queue_per_token=2)
    try:
        pid = person(s)
        rec = write_tones(tmp_path / "long.wav", [("sad", 3.0)] * 8)
        assert submit(s, pid, rec).status_code == 202
        assert submit(s, pid, rec).status_code == 202
        r = submit(s, pid, rec)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "queue is full" in r.json()["detail"]
        assert len(list(s.settings.uploads_dir.iterdir())) == 2  # the refused upload was not kept
        assert s.client.get("/healthz").status_code == 200
    finally:
        s.client.__exit__(None, None, None)


def test_one_token_cannot_take_the_whole_queue(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.3), queue_size=2)  # a token's share: a quarter, at least 1
    try:
        assert s.settings.token_share == 1
        pa, pb = person(s), person(s, headers=s.b)
        rec = write_tones(tmp_path / "long.wav", [("sad", 3.0)] * 8)
        assert submit(s, pa, rec).status_code == 202
        r = submit(s, pa, rec)
        assert r.status_code == 429 and "its share of the queue" in r.json()["detail"]
        assert submit(s, pb, rec, headers=s.b).status_code == 202  # the other token still gets in
        assert len(list(s.settings.uploads_dir.iterdir())) == 2
    finally:
        s.client.__exit__(None, None, None)


def test_tokens_take_turns_in_the_queue(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.05), queue_size=8, queue_per_token=4)
    try:
        pa, pb = person(s), person(s, headers=s.b)
        rec = write_tones(tmp_path / "r.wav", [("sad", 2.0)] * 3)
        s.service.runner._stopping.set()  # hold the job thread: queue first, then let it run
        for thread in s.service.runner._threads:
            thread.join(5)
        a_jobs = [submit(s, pa, rec).json()["job"]["id"] for _ in range(3)]
        b_job = submit(s, pb, rec, headers=s.b).json()["job"]["id"]
        order = []
        for _ in range(4):
            job = s.service.store.claim_next_job()
            order.append(job["id"])
            s.service.store.finish_job(job["id"], {}, None)
        # a's first job, then b's (a token whose jobs started longest ago goes first), then a's others in order
        assert order == [a_jobs[0], b_job, a_jobs[1], a_jobs[2]]
    finally:
        s.client.__exit__(None, None, None)


# -- predict ----------------------------------------------------------------------------------------------
def test_predict_one_and_several_clips(svc):
    files = [("files", (f"{lab}.wav", wav_bytes(tone(0.8, SR, f, amp=0.3)), "audio/wav"))
             for lab, f in TONE_LABELS.items()]
    r = svc.client.post("/api/v1/predict", headers=svc.a, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["label"] for p in body["predictions"]] == list(TONE_LABELS)
    for p in body["predictions"]:
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert p["windows"] is None
    assert "not a diagnosis" in body["notice"]
    # a batch goes on past a bad clip and names it
    files.append(("files", ("notes.txt", b"hello, this is not audio", "text/plain")))
    body = svc.client.post("/api/v1/predict", headers=svc.a, files=files).json()
    assert len(body["predictions"]) == 4
    assert body["failures"][0]["file"] == "notes.txt" and "libsndfile" in body["failures"][0]["reason"]
    assert list(svc.settings.uploads_dir.iterdir()) == []


def test_predict_long_clip_has_per_window_detail(svc, tmp_path):
    path = write_tones(tmp_path / "long.flac", [("sad", 2.5), ("angry", 2.5)])
    with open(path, "rb") as fh:
        r = svc.client.post("/api/v1/predict", headers=svc.a, files={"files": ("long.flac", fh)},
                            data={"vad": "energy"})
    assert r.status_code == 200, r.text
    item = r.json()["predictions"][0]
    assert item["windows"] and [s["label"] for s in item["segments"]] == ["sad", "angry"]
    assert item["windows"][0]["label"] == "sad" and item["windows"][-1]["label"] == "angry"


# -- bad input: a clear 4xx each, and the service goes on ----------------------------------------------------
def _truncated() -> bytes:
    data = wav_bytes(tone(1.0, SR, 450.0))
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "empty": (b"", 400, "empty upload"),
    "not audio": (b"%PDF-1.4 this is a document" * 10, 415, "not audio"),
    "html named .wav": (b"<html><body>hi</body></html>", 415, "libsndfile"),
    "truncated": (_truncated(), 422, "truncated"),
    "silent": (wav_bytes(np.zeros(SR, np.float32)), 422, "silent"),
    "no frames": (wav_bytes(np.zeros(0, np.float32)), 422, "empty"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_predict_uploads_get_a_clear_4xx(svc, case):
    data, status, reason = BAD_UPLOADS[case]
    r = svc.client.post("/api/v1/predict", headers=svc.a, files={"files": ("clip.wav", data, "audio/wav")})
    assert r.status_code == status, (case, r.status_code, r.text)
    text = json.dumps(r.json())
    assert reason in text and "clip.wav" in text
    assert svc.client.get("/readyz").status_code == 200
    assert list(svc.settings.uploads_dir.iterdir()) == []


@pytest.mark.parametrize("case", ["empty", "not audio", "truncated", "no frames"])
def test_bad_session_uploads_are_refused_before_a_job(svc, case):
    data, status, reason = BAD_UPLOADS[case]
    pid = person(svc)
    r = svc.client.post(f"/api/v1/people/{pid}/sessions", headers=svc.a, files={"file": ("rec.wav", data)})
    assert r.status_code == status and reason in r.json()["detail"] and "rec.wav" in r.json()["detail"]
    assert svc.client.get(f"/api/v1/people/{pid}/sessions", headers=svc.a).json() == []
    assert svc.service.store.active_jobs() == 0


def test_mislabelled_audio_is_recognised_by_content(svc, tmp_path):
    flac = wav_bytes(tone(0.8, SR, TONE_LABELS["happy"], amp=0.3), fmt="FLAC")
    r = svc.client.post("/api/v1/predict", headers=svc.a,
                        files={"files": ("../../etc/passwd.mp3", flac, "text/plain")})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "happy"
    assert r.json()["predictions"][0]["file"] == "passwd.mp3"  # shown, never a path


def test_file_names_are_never_paths(svc, tmp_path):
    pid = person(svc)
    rec = write_tones(tmp_path / "r.wav", [("angry", 1.5)])
    with open(rec, "rb") as fh:
        r = svc.client.post(f"/api/v1/people/{pid}/sessions", headers=svc.a,
                            files={"file": ("../../../serkit.db", fh)}, data={"vad": "energy"})
    assert r.status_code == 202
    assert r.json()["session"]["recording"] == "serkit.db"
    assert finished(svc, r.json()["job"]["id"])["state"] == "done"
    sid = r.json()["session"]["id"]
    assert svc.service.store.integrity_check() == "ok"
    for name in ("../serkit.db", "..%2Fserkit.db", "serkit.db", "timeline.png/..", "%2e%2e"):
        assert svc.client.get(f"/api/v1/sessions/{sid}/files/{name}", headers=svc.a).status_code == 404


def test_malformed_json_unknown_ids_and_bad_fields(svc):
    c, a = svc.client, {**svc.a, "Content-Type": "application/json"}
    assert c.post("/api/v1/people", headers=a, content=b"{name: oops").status_code == 422
    assert c.post("/api/v1/people", headers=a, content=b'{"name": "x", "admin": true}').status_code == 422
    assert c.post("/api/v1/people", headers=a, content=b'{"name": ""}').status_code == 422
    assert c.post("/api/v1/people", headers=a, content=b'[1, 2]').status_code == 422
    for url in ("/api/v1/people/nope", "/api/v1/sessions/nope", "/api/v1/jobs/nope", "/api/v1/people/nope/trend"):
        r = c.get(url, headers=svc.a)
        assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert c.delete("/api/v1/sessions/nope", headers=svc.a).status_code == 404
    pid = person(svc)
    r = c.post(f"/api/v1/people/{pid}/sessions", headers=svc.a, files={"file": ("a.wav", wav_bytes(tone()))},
               data={"date": "last tuesday"})
    assert r.status_code == 422 and "date" in r.json()["detail"]
    r = c.post(f"/api/v1/people/{pid}/sessions", headers=svc.a, files={"file": ("a.wav", wav_bytes(tone()))},
               data={"vad": "psychic"})
    assert r.status_code == 422
    assert c.post("/api/v1/predict", headers=svc.a).status_code == 422  # no files
    assert c.get("/healthz").status_code == 200


# -- jobs, results, storage --------------------------------------------------------------------------------
def test_session_job_results_and_audio_deleted_after_analysis(svc, tmp_path):
    pid = person(svc)
    r = submit(svc, pid, write_tones(tmp_path / "s.wav", [("sad", 3.0), ("angry", 3.0)]))
    assert r.status_code == 202
    sid, jid = r.json()["session"]["id"], r.json()["job"]["id"]
    job = finished(svc, jid)
    assert job["state"] == "done" and job["progress"] == 1.0 and job["attempts"] == 1
    s = svc.client.get(f"/api/v1/sessions/{sid}", headers=svc.a).json()
    assert s["status"] == "done" and not s["has_audio"]
    assert s["summary"]["share"]["sad"] == pytest.approx(0.5, abs=0.15)
    tl = svc.client.get(s["files"]["timeline.json"], headers=svc.a).json()
    assert [seg["label"] for seg in tl["segments"]] == ["sad", "angry"] and tl["recording"] == "s.wav"
    png = svc.client.get(s["files"]["timeline.png"], headers=svc.a)
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    report = svc.client.get(s["files"]["report.html"], headers=svc.a)
    assert "not a diagnosis" in report.text and "sandbox" in report.headers["content-security-policy"]
    assert list(svc.settings.uploads_dir.iterdir()) == []  # only derived results are stored
    assert svc.client.get(f"/api/v1/sessions/{sid}/recording", headers=svc.a).status_code == 404


def test_keep_audio_and_deleting_a_recording(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, keep_audio=True)
    try:
        pid = person(s)
        rec = write_tones(tmp_path / "k.wav", [("happy", 2.0)])
        r = submit(s, pid, rec)
        sid = r.json()["session"]["id"]
        assert finished(s, r.json()["job"]["id"])["state"] == "done"
        got = s.client.get(f"/api/v1/sessions/{sid}/recording", headers=s.a)
        assert got.status_code == 200 and got.content == rec.read_bytes()
        assert s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()["sessions"]
        assert s.client.delete(f"/api/v1/sessions/{sid}/recording", headers=s.a).status_code == 200
        assert list(s.settings.uploads_dir.iterdir()) == []
        assert not (s.settings.results_dir / sid).exists()
        left = s.client.get(f"/api/v1/sessions/{sid}", headers=s.a).json()
        assert left["status"] == "recording_deleted" and left["summary"] is None and left["files"] == {}
        assert s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()["sessions"] == []
    finally:
        s.client.__exit__(None, None, None)


def test_trend_across_sessions_and_deleting_a_person(svc, tmp_path):
    pid = person(svc, name="Pat")
    plans = {"2026-01-05": [("sad", 3.0)], "2026-01-01": [("happy", 3.0)], "2026-01-03": [("angry", 2.0), ("sad", 2.0)]}
    jobs = [submit(svc, pid, write_tones(tmp_path / f"{d}.wav", plan), date=d).json() for d, plan in plans.items()]
    for j in jobs:
        assert finished(svc, j["job"]["id"])["state"] == "done"
    t = svc.client.get(f"/api/v1/people/{pid}/trend", headers=svc.a).json()
    assert [r["date"][:10] for r in t["sessions"]] == ["2026-01-01", "2026-01-03", "2026-01-05"]
    assert t["sessions"][0]["share_happy"] == pytest.approx(1.0) and t["sessions"][2]["share_sad"] == pytest.approx(1.0)
    assert t["sessions"][1]["negative_share"] == pytest.approx(1.0)
    assert svc.client.get(t["files"]["trend.png"], headers=svc.a).content[:4] == b"\x89PNG"
    report = svc.client.get(t["files"]["report.html"], headers=svc.a).text
    assert "Trend across sessions" in report and "not a diagnosis" in report
    # deleting one session drops it from the trend and removes its files
    gone = jobs[0]["session"]["id"]
    assert svc.client.delete(f"/api/v1/sessions/{gone}", headers=svc.a).status_code == 200
    assert not (svc.settings.results_dir / gone).exists()
    assert len(svc.client.get(f"/api/v1/people/{pid}/trend", headers=svc.a).json()["sessions"]) == 2
    # deleting the person removes everything derived
    assert svc.client.delete(f"/api/v1/people/{pid}", headers=svc.a).status_code == 200
    assert svc.client.get(f"/api/v1/people/{pid}", headers=svc.a).status_code == 404
    assert list(svc.settings.results_dir.iterdir()) == [] and list(svc.settings.people_dir.iterdir()) == []
    db = sqlite3.connect(svc.settings.db_path)
    assert [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("people", "sessions", "jobs")] == [0, 0, 0]


def test_deleting_a_running_job(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.2))
    try:
        pid = person(s)
        rec = write_tones(tmp_path / "long.wav", [("sad", 4.0)] * 15)  # ~70 s: many blocks
        r = submit(s, pid, rec)
        sid, jid = r.json()["session"]["id"], r.json()["job"]["id"]
        wait_for(lambda: s.client.get(f"/api/v1/jobs/{jid}", headers=s.a).json()["state"] == "running")
        assert s.client.delete(f"/api/v1/sessions/{sid}", headers=s.a).status_code == 200
        assert s.client.get(f"/api/v1/jobs/{jid}", headers=s.a).status_code == 404
        assert s.client.delete(f"/api/v1/sessions/{sid}", headers=s.a).status_code == 404  # a second delete
        wait_for(lambda: s.service.runner.current is None, timeout=30)
        assert not (s.settings.results_dir / sid).exists() and list(s.settings.results_dir.iterdir()) == []
        assert list(s.settings.uploads_dir.iterdir()) == []
        # deleting only the recording of a running job: it stops, and nothing derived is left
        r = submit(s, pid, rec)
        sid, jid = r.json()["session"]["id"], r.json()["job"]["id"]
        wait_for(lambda: s.client.get(f"/api/v1/jobs/{jid}", headers=s.a).json()["state"] == "running")
        assert s.client.delete(f"/api/v1/sessions/{sid}/recording", headers=s.a).status_code == 200
        wait_for(lambda: s.service.runner.current is None, timeout=30)
        left = s.client.get(f"/api/v1/sessions/{sid}", headers=s.a).json()
        assert left["status"] == "recording_deleted" and left["job"]["state"] == "failed"
        assert "recording was deleted" in left["job"]["error"]
        assert list(s.settings.results_dir.iterdir()) == [] and list(s.settings.uploads_dir.iterdir()) == []
        # the job thread goes on with the next job
        r = submit(s, pid, write_tones(tmp_path / "short.wav", [("happy", 1.0)]))
        assert finished(s, r.json()["job"]["id"])["state"] == "done"
    finally:
        s.client.__exit__(None, None, None)


def test_shutdown_fails_the_running_job_with_the_reason(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.2), shutdown_grace=0.2)
    pid = person(s)
    rec = write_tones(tmp_path / "long.wav", [("sad", 4.0)] * 15)
    jid = submit(s, pid, rec).json()["job"]["id"]
    queued = submit(s, pid, rec).json()["job"]["id"]
    wait_for(lambda: s.client.get(f"/api/v1/jobs/{jid}", headers=s.a).json()["state"] == "running")
    s.client.__exit__(None, None, None)  # the lifespan's shutdown, as on SIGTERM
    store = Store(s.settings.db_path)
    job = store.job(None, jid)
    assert job["state"] == "failed" and "server was stopped" in job["error"]
    assert store.job(None, queued)["state"] == "queued"  # runs after the next start
    assert store.integrity_check() == "ok"
    store.close()
    s2 = start(tmp_path, tiny_model)
    try:
        assert s2.service.store.job(None, queued)["state"] in ("queued", "running", "done")
        wait_for(lambda: s2.service.store.job(None, queued)["state"] == "done", timeout=60)
    finally:
        s2.client.__exit__(None, None, None)


def test_restart_requeues_an_interrupted_job_or_fails_it_with_the_reason(tmp_path):
    store = Store(tmp_path / "serkit.db")
    tid = store.token_for(store.create_token("t"))["id"]
    pid = store.create_person(tid, "p")["id"]
    made = [store.create_session(tid, pid, date="2026-01-01T00:00", recording="r.wav", audio=f"{k}.upload",
                                 config={}, queue_size=10) for k in range(3)]
    jobs = [j["id"] for _, j in made]
    for _ in jobs:
        store.claim_next_job()  # all three "running" when the process died
    with store._tx() as c:  # the third had already been tried twice
        c.execute("UPDATE jobs SET attempts = 2 WHERE id = ?", (jobs[2],))
    present = {"0.upload", "2.upload"}  # the second job's upload is gone
    actions = {a["job"]: a for a in store.recover_interrupted(2, lambda name: name in present)}
    assert actions[jobs[0]]["action"] == "requeued" and store.job(None, jobs[0])["state"] == "queued"
    assert store.job(None, jobs[1])["state"] == "failed" and "no longer there" in store.job(None, jobs[1])["error"]
    assert store.job(None, jobs[2])["state"] == "failed" and "interrupted 2 time(s)" in store.job(None, jobs[2])["error"]
    assert not [j for j in jobs if store.job(None, j)["state"] == "running"]
    store.close()


def test_database_is_wal_and_migrates_from_the_previous_version(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_V1)
    old.execute("INSERT INTO tokens (name, hash, created) VALUES ('t', 'h', '2025-01-01')")
    old.execute("INSERT INTO people VALUES ('p1', 1, 'Pat', '2025-01-01')")
    old.execute("INSERT INTO sessions (id, person_id, token_id, date, recording, status, created) "
                "VALUES ('s1', 'p1', 1, '2025-01-02T00:00', 'r.wav', 'done', '2025-01-02')")
    old.execute("INSERT INTO jobs (id, session_id, token_id, state, config, created) "
                "VALUES ('j1', 's1', 1, 'done', '{}', '2025-01-02')")
    old.commit()
    old.close()
    store = Store(path)
    assert store.version() == SCHEMA_VERSION == max(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.job(1, "j1")["attempts"] == 0  # the column version 2 added, with its default
    assert store.session(1, "s1")["recording"] == "r.wav" and store.session(1, "s1")["peak_dbfs"] is None
    assert store.person(1, "p1")["name"] == "Pat"
    # version 3: the token kept its id (its people stay its own), and ids are never reused from now on
    assert store.tokens()[0]["id"] == 1 and store.tokens()[0]["revoked"] is None
    table = store.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tokens'").fetchone()[0]
    assert "AUTOINCREMENT" in table
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.integrity_check() == "ok"
    store.close()
    # a database newer than the code is refused, not damaged
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="newer than this serkit"):
        Store(path)


# -- logs and the command line -------------------------------------------------------------------------------
def test_structured_access_log_names_the_token_not_its_secret(svc, caplog):
    with caplog.at_level(logging.INFO, logger="serkit.serve.access"):
        svc.client.get("/api/v1/people", headers=svc.a)
    record = [r for r in caplog.records if r.name == "serkit.serve.access"][-1]
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["status"] == 200 and line["token"] == "alice"
    assert line["path"] == "/api/v1/people" and "ms" in line and line["level"] == "info"
    assert svc.token not in JsonFormatter().format(record)


def test_cli_create_token_prints_one_and_stores_its_hash(tmp_path):
    r = CliRunner().invoke(cli_app, ["serve", "--create-token", "lab laptop", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    store = Store(tmp_path / "serkit.db")
    assert store.token_for(secret)["name"] == "lab laptop"
    store.close()
    r = CliRunner().invoke(cli_app, ["serve", "--data-dir", str(tmp_path), "--rate-limit", "-1"])
    assert r.exit_code == 2 and "--rate-limit" in r.output


def test_a_session_without_speech_is_analysed_and_kept_in_the_trend(svc, tmp_path):
    pid = person(svc)
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(3 * SR, np.float32), SR)
    for date, path in (("2026-04-01", quiet), ("2026-04-02", write_tones(tmp_path / "t.wav", [("sad", 2.0)]))):
        r = submit(svc, pid, path, date=date)
        assert finished(svc, r.json()["job"]["id"])["state"] == "done"
    sessions = svc.client.get(f"/api/v1/people/{pid}/sessions", headers=svc.a).json()
    assert sessions[0]["summary"]["windows"] == 0 and sessions[0]["summary"]["negative_share"] is None
    t = svc.client.get(f"/api/v1/people/{pid}/trend", headers=svc.a).json()
    assert [r["negative_share"] for r in t["sessions"]] == [None, 1.0]
    assert svc.client.get(t["files"]["report.html"], headers=svc.a).status_code == 200


# -- personal baselines -------------------------------------------------------------------------------------
def test_a_persons_baseline_is_built_from_their_other_sessions_and_shown_beside_the_strict_result(svc, tmp_path):
    s = svc
    pid = person(s)
    plan = [(lab, 3.0) for lab in ("neutral", "sad", "angry", "happy")] * 3  # 36 s of speech a session
    sids = []
    for k in range(3):
        rec = write_tones(tmp_path / f"s{k}.wav", plan)
        r = submit(s, pid, rec, date=f"2026-03-0{k + 1}")
        assert finished(s, r.json()["job"]["id"])["state"] == "done"
        sids.append(r.json()["session"]["id"])
    # the features that baselines are built from are stored with each session, never served
    assert all((s.settings.results_dir / sid / "features.npz").is_file() for sid in sids)
    assert s.client.get(f"/api/v1/sessions/{sids[0]}/files/features.npz", headers=s.a).status_code == 404
    # at analysis time: the first had no other session, the second one (36 s: too little), the third two (72 s)
    first, second, third = (s.client.get(f"/api/v1/sessions/{sid}", headers=s.a).json() for sid in sids)
    assert "adapted" not in first["summary"] and "adapted" not in second["summary"]
    assert third["summary"]["adapted"]["label"] == "adapted to this person's 2 other session(s)"
    # now every session has two others, so every baseline is used, and the trend shows both results
    trend = s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()
    assert trend["baseline"]["used"] is True and trend["baseline"]["sessions"] == 3
    assert all(r["adapted"] == "adapted to this person's 2 other session(s)" for r in trend["sessions"])
    assert all(0 <= r["adapted_negative_share"] <= 1 and r["negative_share"] is not None for r in trend["sessions"])
    assert first["baseline"]["used"] is True and first["baseline"]["other_sessions"] == 2
    html = s.client.get(f"/api/v1/people/{pid}/report.html", headers=s.a).text
    assert "negative share (adapted)" in html and "Adapted to the person: adapted to this person&#x27;s 2 other" in html
    # deleting a session rebuilds the others' baselines: one other session each is too little material
    assert s.client.delete(f"/api/v1/sessions/{sids[2]}", headers=s.a).status_code == 200
    assert not (s.settings.results_dir / sids[2]).exists()
    trend = s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()
    assert trend["baseline"]["used"] is False and any("too small to trust" in w for w in trend["baseline"]["why_not"])
    assert all(r.get("adapted_negative_share") is None for r in trend["sessions"])
    assert trend["baselines"][sids[0]]["other_sessions"] == 1


def test_sessions_analysed_before_baselines_stay_strict_and_say_why(svc, tmp_path):
    s = svc
    pid = person(s)
    plan = [(lab, 3.0) for lab in ("neutral", "sad", "angry", "happy")] * 3
    sids = []
    for k in range(2):
        r = submit(s, pid, write_tones(tmp_path / f"s{k}.wav", plan), date=f"2026-03-0{k + 1}")
        assert finished(s, r.json()["job"]["id"])["state"] == "done"
        sids.append(r.json()["session"]["id"])
    for sid in sids:  # as a session analysed by an older serkit: a timeline, no features
        (s.settings.results_dir / sid / "features.npz").unlink()
    trend = s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()
    assert len(trend["sessions"]) == 2  # nothing stored is lost: both stay in the trend, strict
    assert trend["baseline"]["used"] is False
    assert any("analysed before personal baselines were kept" in w for w in trend["baseline"]["why_not"])
