"""The service under abuse (issue 28): limits decided before a body is read, recordings too long or at absurd
rates, a bound on classification, tokens that can be revoked, private files, headers, retention. In process;
kills of a real server are in test_serve_server.py."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from conftest import tone
from serkit.cli import app as cli_app
from serkit.serve.store import Store
from serve_helpers import SlowModel, wait_for, write_tones
from test_api import SR
from test_serve import finished, person, start, submit, wav_bytes


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str = "b0undary") -> tuple[bytes, dict]:
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"; filename="{f}"\r\n'
                    f"Content-Type: audio/wav\r\n\r\n".encode() + data + b"\r\n" for n, f, data in parts)
    return body + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _asgi(app, method: str, path: str, headers: dict, chunks: list[bytes], hold: asyncio.Event | None = None):
    """Call the ASGI app directly; returns (status, how many body chunks it asked for). ``hold`` keeps the body
    from finishing until it is set (an upload in progress)."""
    asked = [0]
    sent = {"status": None}

    async def receive():
        asked[0] += 1
        if asked[0] > len(chunks):
            if hold is not None:
                await hold.wait()
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunks[asked[0] - 1], "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "client": ("1.2.3.4", 5),
             "server": ("x", 80), "scheme": "http", "http_version": "1.1", "root_path": "", "state": {}}
    return scope, receive, send, sent, asked


def _call(app, *args, **kwargs) -> tuple[int, int]:
    scope, receive, send, sent, asked = _asgi(app, *args, **kwargs)
    asyncio.run(app(scope, receive, send))
    return sent["status"], asked[0]


def test_refusals_come_before_the_body_is_read(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.3), rate_limit=3, queue_size=4, queue_per_token=1)
    try:
        pid = person(s)
        body, headers = _multipart([("file", "r.wav", wav_bytes(tone(2.0, SR, 450.0)))])
        chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
        auth = {**headers, "Authorization": s.a["Authorization"]}
        # an unknown token, another token's person: answered before one chunk of the body is asked for
        assert _call(s.app, "POST", f"/api/v1/people/{pid}/sessions", {**headers, "Authorization": "Bearer nope"},
                     chunks) == (401, 0)
        assert _call(s.app, "POST", f"/api/v1/people/{pid}/sessions", {**headers, **s.b}, chunks) == (404, 0)
        # the token's share of the queue taken: 429 before the body
        rec = write_tones(tmp_path / "long.wav", [("sad", 3.0)] * 8)
        assert submit(s, pid, rec).status_code == 202
        assert _call(s.app, "POST", f"/api/v1/people/{pid}/sessions", auth, chunks) == (429, 0)
        # over the rate limit (3 a minute; person() and submit() took two, the call above a third): 429 too
        assert _call(s.app, "POST", "/api/v1/predict", auth, chunks) == (429, 0)
        assert list(s.settings.incoming_dir.iterdir()) == []
    finally:
        s.client.__exit__(None, None, None)


def test_uploads_at_once_are_bounded_and_spool_inside_the_data_folder(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, max_uploads=1)
    try:
        body, headers = _multipart([("files", "r.wav", wav_bytes(tone(1.0, SR, 450.0)))])
        auth = {**headers, "Authorization": s.a["Authorization"]}

        async def both():
            hold = asyncio.Event()
            first = _asgi(s.app, "POST", "/api/v1/predict", auth, [body[:2000]], hold=hold)
            task = asyncio.ensure_future(s.app(*first[:3]))
            await asyncio.sleep(0.3)  # the first body is half received: its part lies in incoming/
            spooled = [p.suffix for p in s.settings.incoming_dir.iterdir()]
            second = _asgi(s.app, "POST", "/api/v1/predict", {**auth, **s.b}, [body])  # another token
            await s.app(*second[:3])
            hold.set()
            await task
            return spooled, second[3]["status"], second[4][0]

        spooled, status, asked = asyncio.run(both())
        assert spooled == [".part"]
        assert status == 503 and asked == 0
        assert list(s.settings.incoming_dir.iterdir()) == []  # the cut-off part was deleted
    finally:
        s.client.__exit__(None, None, None)


def test_many_parts_are_refused_as_they_arrive(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model)
    try:
        clip = wav_bytes(tone(0.5, SR, 450.0))
        body, headers = _multipart([("files", f"c{k}.wav", clip) for k in range(100)])
        r = s.client.post("/api/v1/predict", headers={**s.a, **headers}, content=body)
        assert r.status_code == 413 and "at most 32" in r.json()["detail"]
        assert list(s.settings.incoming_dir.iterdir()) == [] and list(s.settings.uploads_dir.iterdir()) == []
        # a field far too long is refused too
        body = (b'--b\r\nContent-Disposition: form-data; name="vad"\r\n\r\n' + b"x" * 5000 + b"\r\n--b--\r\n")
        r = s.client.post("/api/v1/predict", headers={**s.a, "Content-Type": "multipart/form-data; boundary=b"},
                          content=body)
        assert r.status_code == 413 and "form field 'vad'" in r.json()["detail"]
    finally:
        s.client.__exit__(None, None, None)


def test_recordings_too_long_by_their_header_or_at_absurd_rates_are_refused(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, max_session_minutes=0.1)  # 6 s
    try:
        pid = person(s)
        long = write_tones(tmp_path / "long.flac", [("sad", 4.0), ("happy", 4.0)], fmt="FLAC")
        r = submit(s, pid, long)
        assert r.status_code == 413 and "--max-session-minutes" in r.json()["detail"]
        one_hz = tmp_path / "one_hz.wav"
        sf.write(one_hz, np.zeros(20000, np.int16), 1, subtype="PCM_16")  # 20,000 s claimed in 40 kB
        r = submit(s, pid, one_hz)
        assert r.status_code == 422 and "sample rate 1 Hz" in r.json()["detail"]
        clip = io.BytesIO()
        sf.write(clip, np.zeros(8000, np.float32), 4000, format="WAV")
        r = s.client.post("/api/v1/predict", headers=s.a, files={"files": ("slow.wav", clip.getvalue())})
        assert r.status_code == 422 and "sample rate 4000 Hz" in r.json()["failures"][0]["reason"]
        assert list(s.settings.uploads_dir.iterdir()) == []
    finally:
        s.client.__exit__(None, None, None)


def test_another_tokens_job_starts_while_a_long_one_runs(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.3), queue_per_token=3)  # two job workers by default
    try:
        pa, pb = person(s), person(s, headers=s.b)
        long = write_tones(tmp_path / "long.wav", [("sad", 4.0)] * 15)
        hostile = [submit(s, pa, long).json()["job"]["id"] for _ in range(3)]
        wait_for(lambda: s.client.get(f"/api/v1/jobs/{hostile[0]}", headers=s.a).json()["state"] == "running")
        honest = submit(s, pb, write_tones(tmp_path / "short.wav", [("happy", 2.0)]), headers=s.b).json()
        done = finished(s, honest["job"]["id"], headers=s.b)
        assert done["state"] == "done"
        # meanwhile the first token ran one job at a time on the other worker: its first still runs
        states = [s.client.get(f"/api/v1/jobs/{j}", headers=s.a).json()["state"] for j in hostile]
        assert states == ["running", "queued", "queued"]
    finally:
        s.client.__exit__(None, None, None)


def test_job_threads_run_at_a_lower_cpu_priority_than_requests(tmp_path, tiny_model):
    from serkit.serve.runner import JOB_NICE

    s = start(tmp_path, tiny_model)
    try:
        threads = s.service.runner._threads
        wait_for(lambda: all(t.native_id for t in threads))
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        wait_for(lambda: all(os.getpriority(os.PRIO_PROCESS, t.native_id) == min(19, mine + JOB_NICE)
                             for t in threads), timeout=5)
    finally:
        s.client.__exit__(None, None, None)


def test_a_job_over_the_wall_clock_limit_is_stopped(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 0.4), max_job_minutes=0.01)  # 0.6 s
    try:
        pid = person(s)
        r = submit(s, pid, write_tones(tmp_path / "r.wav", [("sad", 3.0)] * 10))
        job = finished(s, r.json()["job"]["id"])
        assert job["state"] == "failed" and "--max-job-minutes" in job["error"]
        assert list(s.settings.uploads_dir.iterdir()) == []  # its recording went with it
        assert s.service.runner.alive()
    finally:
        s.client.__exit__(None, None, None)


def test_predict_is_bounded_and_light_routes_answer_meanwhile(tmp_path, tiny_model):
    s = start(tmp_path, SlowModel(tiny_model, 1.5), predict_workers=1, predict_timeout=2.5)
    try:
        files = [("files", (f"c{k}.wav", wav_bytes(tone(0.8, SR, 450.0)), "audio/wav")) for k in range(3)]
        answers = {}

        def heavy(key, headers):
            answers[key] = s.client.post("/api/v1/predict", headers=headers, files=files)

        threads = [threading.Thread(target=heavy, args=(k, h)) for k, h in enumerate((s.a, s.b))]
        for t in threads:
            t.start()
            time.sleep(0.2)
        time.sleep(0.3)
        started = time.monotonic()
        assert s.client.get("/api/v1/people", headers=s.a).status_code == 200
        assert time.monotonic() - started < 1.0  # the light route did not wait behind the classification
        # a token's second /predict while its first is in progress: 429 before its body is read
        again = s.client.post("/api/v1/predict", headers=s.a, files=files[:1])
        assert again.status_code == 429 and "in progress" in again.json()["detail"]
        for t in threads:
            t.join()
        statuses = sorted(a.status_code for a in answers.values())
        # one request got the classifier: 2 of its 3 clips before the deadline, the third a failure; the other
        # waited for it until its own deadline passed: 503
        assert statuses == [200, 503]
        done = next(a.json() for a in answers.values() if a.status_code == 200)
        assert len(done["predictions"]) == 2 and "deadline" in done["failures"][0]["reason"]
        busy = next(a for a in answers.values() if a.status_code == 503)
        assert "no classifier was free" in busy.json()["detail"] and busy.headers["retry-after"]
    finally:
        s.client.__exit__(None, None, None)


def test_revoked_and_expired_tokens_get_401_and_ids_are_never_reused(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model)
    try:
        pid = person(s, name="Alice")
        store = s.service.store
        assert store.revoke_tokens("alice") == 1
        assert s.client.get("/api/v1/people", headers=s.a).status_code == 401  # at once, same process
        assert s.client.get("/api/v1/people", headers=s.b).status_code == 200
        # the revoked token's data stays owned by it until deleted
        assert store.person(store.tokens()[0]["id"], pid)["name"] == "Alice"
        # an expired token is refused like a revoked one
        carol = store.create_token("carol", expires_days=1)
        with store._tx() as c:
            c.execute("UPDATE tokens SET expires = ? WHERE name = 'carol'",
                      ((datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="seconds"),))
        assert s.client.get("/api/v1/people", headers={"Authorization": f"Bearer {carol}"}).status_code == 401
        # a token row deleted by hand: the next token gets a new id and sees none of the old token's people
        ids = [t["id"] for t in store.tokens()]
        with store._tx() as c:
            c.execute("PRAGMA foreign_keys=OFF")
        store.conn.execute("PRAGMA foreign_keys=OFF")
        with store._tx() as c:
            c.execute("DELETE FROM tokens WHERE id = ?", (max(ids),))
        store.conn.execute("PRAGMA foreign_keys=ON")
        dave = store.create_token("dave")
        assert store.token_for(dave)["id"] > max(ids)
        assert s.client.get("/api/v1/people", headers={"Authorization": f"Bearer {dave}"}).json() == []
    finally:
        s.client.__exit__(None, None, None)


def test_token_commands_list_revoke_expire_and_delete_data(tmp_path, tiny_model):
    data = tmp_path / "data"
    run = CliRunner().invoke

    def serve(*args):
        return run(cli_app, ["serve", "--data-dir", str(data), *args], catch_exceptions=False, env={"COLUMNS": "200"})

    made = serve("--create-token", "eve", "--token-expires-days", "30")
    assert made.exit_code == 0 and "expires in 30 days" in made.output
    secret = made.output.strip().splitlines()[-1]
    assert serve("--create-token", "frank").exit_code == 0
    listed = serve("--list-tokens")
    assert listed.exit_code == 0 and "eve" in listed.output and "frank" in listed.output
    assert secret not in listed.output
    store = Store(data / "serkit.db")
    eve = store.token_for(secret)
    pid = store.create_person(eve["id"], "Pat")["id"]
    store.close()
    refused = serve("--delete-token-data", "eve")
    assert refused.exit_code != 0 and "revoke-token it first" in " ".join(refused.output.split())
    assert serve("--revoke-token", "eve").exit_code == 0
    assert serve("--revoke-token", "eve").exit_code != 0  # nothing valid left to revoke
    deleted = serve("--delete-token-data", "eve")
    assert deleted.exit_code == 0, deleted.output
    store = Store(data / "serkit.db")
    assert store.person(eve["id"], pid) is None and store.token_for(secret) is None
    assert [t["name"] for t in store.tokens()] == ["eve", "frank"]  # the row stays: its id is never taken again
    store.close()
    both = serve("--list-tokens", "--revoke-token", "frank")
    assert both.exit_code != 0 and "one at a time" in both.output


def test_the_data_folder_is_private_whatever_the_umask(tmp_path, tiny_model):
    old = os.umask(0o022)
    try:
        s = start(tmp_path, tiny_model)
        try:
            pid = person(s)
            r = submit(s, pid, write_tones(tmp_path / "r.wav", [("sad", 2.0)]))
            sid = r.json()["session"]["id"]
            assert finished(s, r.json()["job"]["id"])["state"] == "done"
            mode = lambda p: os.stat(p).st_mode & 0o777
            assert mode(s.settings.data_dir) == 0o700
            for sub in ("uploads", "results", "people", "incoming"):
                assert mode(s.settings.data_dir / sub) == 0o700, sub
            assert mode(s.settings.db_path) == 0o600
            for f in (s.settings.results_dir / sid).iterdir():
                assert mode(f) & 0o077 == 0, f.name
        finally:
            s.client.__exit__(None, None, None)
    finally:
        os.umask(old)


def test_headers_names_paths_schema_and_readiness(svc_small):
    s = svc_small
    for r in (s.client.get("/api/v1/people", headers=s.a), s.client.get("/api/v1/people"),
              s.client.get("/api/v1/people/nope", headers=s.a)):
        assert r.headers["cache-control"] == "no-store", r.status_code
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    # names with bidi overrides and zero-width characters are stored without them
    r = s.client.post("/api/v1/people", headers=s.a, json={"name": "Ann\u202egnp.exe\u200b"})
    assert r.json()["name"] == "Anngnp.exe"
    assert s.client.post("/api/v1/people", headers=s.a, json={"name": "\u202e\u2066"}).status_code == 422
    # the OpenAPI schema declares the bearer scheme, so /docs can send a token
    schema = s.client.get("/openapi.json").json()
    assert any(v.get("scheme") == "bearer" for v in schema["components"]["securitySchemes"].values())
    assert "multipart/form-data" in schema["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    # anonymous readiness says nothing about the queue
    assert s.client.get("/readyz").json() == {"status": "ready"}
    # no server path in an error
    text = s.settings.without_paths(f"cannot open {s.settings.uploads_dir / 'abc.upload'}: bad header")
    assert str(s.settings.data_dir) not in text and "the upload" in text


def test_deleted_names_do_not_linger_in_the_database_files(svc_small):
    s = svc_small
    pid = person(s, name="Zebediah-Quux")
    assert s.client.delete(f"/api/v1/people/{pid}", headers=s.a).status_code == 200
    assert s.service.store.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    for path in s.settings.data_dir.glob("serkit.db*"):
        assert b"Zebediah-Quux" not in path.read_bytes(), path.name


def test_retention_deletes_old_sessions_with_their_files(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, retain_days=7, keep_audio=True)
    try:
        pid = person(s)
        sids = []
        for k in range(2):
            r = submit(s, pid, write_tones(tmp_path / f"r{k}.wav", [("sad", 2.0)]), date=f"2026-03-0{k + 1}")
            assert finished(s, r.json()["job"]["id"])["state"] == "done"
            sids.append(r.json()["session"]["id"])
        old = (datetime.now(timezone.utc) - timedelta(days=10)).isoformat(timespec="seconds")
        db = sqlite3.connect(s.settings.db_path)
        db.execute("UPDATE sessions SET created = ? WHERE id = ?", (old, sids[0]))
        db.commit()
        db.close()
        audio = s.service.store.session_audio(sids[0])
        s.service.runner.apply_retention()
        assert s.client.get(f"/api/v1/sessions/{sids[0]}", headers=s.a).status_code == 404
        assert not (s.settings.results_dir / sids[0]).exists() and not (s.settings.uploads_dir / audio).exists()
        assert s.client.get(f"/api/v1/sessions/{sids[1]}", headers=s.a).json()["status"] == "done"
    finally:
        s.client.__exit__(None, None, None)


def test_recovery_deletes_the_audio_of_jobs_it_fails_and_sweeps_orphans(tmp_path, tiny_model):
    from serkit.serve.settings import ServeSettings

    # what a process killed twice during one analysis leaves: a running job with its attempts used up, its audio,
    # an upload no session refers to (a /predict clip) and half a request body
    settings = ServeSettings(data_dir=tmp_path / "data")
    settings.make_dirs()
    store = Store(settings.db_path)
    secret = store.create_token("zoe")
    tid = store.token_for(secret)["id"]
    pid = store.create_person(tid, "P")["id"]
    (settings.uploads_dir / "rec.upload").write_bytes(wav_bytes(tone(2.0, SR, 450.0)))
    session, job = store.create_session(tid, pid, date="2026-03-01T00:00", recording="r.wav", audio="rec.upload",
                                        config={}, queue_size=8)
    with store._tx() as c:
        c.execute("UPDATE jobs SET state = 'running', attempts = 2 WHERE id = ?", (job["id"],))
    store.close()
    (settings.uploads_dir / "0123.upload").write_bytes(b"left by a /predict interrupted by a kill")
    (settings.incoming_dir / "half.part").write_bytes(b"half a body")
    s = start(tmp_path, tiny_model)
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        left = s.client.get(f"/api/v1/sessions/{session['id']}", headers=headers).json()
        assert left["status"] == "failed" and "not retried again" in left["error"]
        assert s.client.get(f"/api/v1/sessions/{session['id']}/recording", headers=headers).status_code == 404
        assert list(settings.uploads_dir.iterdir()) == [] and list(settings.incoming_dir.iterdir()) == []
        assert s.service.store.integrity_check() == "ok"
    finally:
        s.client.__exit__(None, None, None)


import pytest


@pytest.fixture
def svc_small(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model)
    yield s
    s.client.__exit__(None, None, None)
