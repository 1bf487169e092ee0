"""serkit serve as a real process: HTTP on a loopback port, SIGTERM, and a kill during an analysis."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serve_helpers import wait_for, write_tones

REPO = Path(__file__).resolve().parents[1]
#: uvicorn shuts down on SIGTERM, then re-raises the signal: the exit status says "terminated by SIGTERM".
CLEAN_EXIT = (0, -signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    paths = [str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1"}


class Server:
    """A server process and an HTTP client for it; stderr (the JSON log) goes to a file."""

    def __init__(self, argv: list[str], data_dir: Path, port: int, extra_env: dict[str, str] | None = None):
        self.port, self.data_dir = port, data_dir
        self.log = data_dir.parent / f"server-{port}-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(argv, env={**env(), **(extra_env or {})}, cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("wb"))
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def wait_ready(self, timeout: float = 60) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                return self.http.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False
        wait_for(ready, timeout=timeout, every=0.2)

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def cli_server(data_dir: Path, model: Path | None) -> Server:
    """``serkit serve`` (``model`` None: the default model)."""
    port = free_port()
    return Server([sys.executable, "-m", "serkit.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
                   "--rate-limit", "0"] + (["--model", str(model)] if model else []), data_dir, port)


def slow_server(data_dir: Path, model: Path, delay: float, grace: float = 10.0,
                extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    return Server([sys.executable, str(REPO / "tests" / "serve_launch.py"), str(data_dir), str(port), str(model),
                   str(delay), str(grace)], data_dir, port, extra_env)


def new_token(data_dir: Path, name: str = "t") -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "serkit.cli", "serve", "--create-token", name, "--data-dir",
                          str(data_dir)], env=env(), cwd=REPO, capture_output=True, text=True, check=True)
    return {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}


def submit(server: Server, headers, pid: str, path: Path, date: str = "2026-02-01") -> dict:
    with open(path, "rb") as fh:
        r = server.http.post(f"/api/v1/people/{pid}/sessions", headers=headers, files={"file": (path.name, fh)},
                             data={"date": date, "vad": "energy"})
    assert r.status_code == 202, r.text
    return r.json()


def job(server: Server, headers, jid: str) -> dict:
    return server.http.get(f"/api/v1/jobs/{jid}", headers=headers).json()


@pytest.mark.slow
def test_real_server_over_http_and_sigterm(tmp_path, tiny_model_path):
    data = tmp_path / "data"
    headers = new_token(data)
    server = cli_server(data, tiny_model_path)
    try:
        server.wait_ready()
        h = server.http
        assert h.get("/healthz").json() == {"status": "ok"}
        assert h.get("/api/v1/people").status_code == 401
        assert h.get("/docs").status_code == 200 and "<title>" in h.get("/").text
        pid = h.post("/api/v1/people", headers=headers, json={"name": "Pat"}).json()["id"]
        created = submit(server, headers, pid, write_tones(tmp_path / "r.wav", [("sad", 2.0), ("happy", 2.0)]))
        done = wait_for(lambda: (j := job(server, headers, created["job"]["id"]))["state"] in ("done", "failed")
                        and j, timeout=60)
        assert done["state"] == "done", done
        tl = h.get(f"/api/v1/sessions/{created['session']['id']}/files/timeline.json", headers=headers).json()
        assert [s["label"] for s in tl["segments"]] == ["sad", "happy"]
        with open(tmp_path / "r.wav", "rb") as fh:
            # tones are no speech to silero: the energy detector finds them (the form field reaches the model)
            r = h.post("/api/v1/predict", headers=headers, files={"files": ("r.wav", fh)}, data={"vad": "energy"})
        assert r.status_code == 200
        assert h.post("/api/v1/predict", headers=headers, files={"files": ("x.wav", b"junk" * 50)}).status_code == 415
    finally:
        code = server.stop(signal.SIGTERM)
    assert code in CLEAN_EXIT
    lines = server.log_lines()  # every line is JSON
    messages = [line["message"] for line in lines]
    assert "model loaded" in messages and "stopped" in messages
    assert any(line.get("path") == "/api/v1/predict" and line.get("status") == 415 for line in lines)
    assert all(headers["Authorization"].split()[1] not in json.dumps(line) for line in lines)


@pytest.mark.slow
def test_kill_during_analysis_then_restart(tmp_path, tiny_model_path):
    data = tmp_path / "data"
    headers = new_token(data)
    long = write_tones(tmp_path / "long.wav", [("sad", 4.0), ("angry", 4.0)] * 8)  # ~140 s: 14 blocks
    server = slow_server(data, tiny_model_path, delay=0.4)
    server.wait_ready()
    pid = server.http.post("/api/v1/people", headers=headers, json={"name": "Pat"}).json()["id"]
    first = submit(server, headers, pid, long, date="2026-02-01")
    second = submit(server, headers, pid, write_tones(tmp_path / "s.wav", [("happy", 2.0)]), date="2026-02-02")
    wait_for(lambda: job(server, headers, first["job"]["id"])["progress"] > 0, timeout=60)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    db = sqlite3.connect(data / "serkit.db")
    states = dict(db.execute("SELECT id, state FROM jobs"))
    db.close()
    assert states == {first["job"]["id"]: "running", second["job"]["id"]: "queued"}
    sid = first["session"]["id"]
    half = data / "results" / f".{sid}.tmp"  # as if the kill had come while results were being written
    half.mkdir(parents=True, exist_ok=True)
    (half / "timeline.json").write_text('{"recording": "lo')

    server = slow_server(data, tiny_model_path, delay=0.0)
    try:
        server.wait_ready()
        for created in (first, second):
            final = wait_for(lambda c=created: (j := job(server, headers, c["job"]["id"]))["state"]
                             in ("done", "failed") and j, timeout=120)
            assert final["state"] == "done", final
        assert job(server, headers, first["job"]["id"])["attempts"] == 2  # re-run after the kill
        tl = server.http.get(f"/api/v1/sessions/{sid}/files/timeline.json", headers=headers).json()
        assert [s["label"] for s in tl["segments"]] == ["sad", "angry"] * 8
        assert not half.exists() and not list((data / "results").glob(".*"))
        assert list((data / "uploads").iterdir()) == []
    finally:
        assert server.stop(signal.SIGTERM) in CLEAN_EXIT
    assert any(line["message"] == "job recovered after restart" and line["action"] == "requeued"
               for line in server.log_lines())
    db = sqlite3.connect(data / "serkit.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('running', 'queued')").fetchone()[0] == 0
    db.close()


@pytest.mark.slow
def test_sigterm_during_analysis_fails_the_job_with_the_reason(tmp_path, tiny_model_path):
    data = tmp_path / "data"
    headers = new_token(data)
    server = slow_server(data, tiny_model_path, delay=0.4, grace=0.5)
    server.wait_ready()
    pid = server.http.post("/api/v1/people", headers=headers, json={"name": "Pat"}).json()["id"]
    created = submit(server, headers, pid, write_tones(tmp_path / "long.wav", [("sad", 4.0)] * 20))
    wait_for(lambda: job(server, headers, created["job"]["id"])["progress"] > 0, timeout=60)
    assert server.stop(signal.SIGTERM) in CLEAN_EXIT
    db = sqlite3.connect(data / "serkit.db")
    state, error = db.execute("SELECT state, error FROM jobs").fetchone()
    assert state == "failed" and "server was stopped" in error
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert list((data / "uploads").iterdir()) == [] and not list((data / "results").iterdir())


def _slow_upload(port: int, headers: dict, pid: str, body_head: bytes) -> socket.socket:
    """A session upload whose body stops after its first bytes (the connection is left open)."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (f"POST /api/v1/people/{pid}/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: {headers['Authorization']}"
            "\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 10000000\r\n\r\n")
    sock.sendall(head.encode() + b'--zz\r\nContent-Disposition: form-data; name="file"; filename="r.wav"\r\n\r\n'
                 + body_head)
    return sock


@pytest.mark.slow
@pytest.mark.parametrize("step", ["upload", "queued", "running twice", "writing results"])
def test_a_kill_at_every_step_of_a_job_loses_nothing_and_keeps_nothing(tmp_path, tiny_model_path, step):
    """Kill the server at one step of a job, restart it: no job lost or run twice, no audio left that should be
    gone, a sound database."""
    data = tmp_path / "data"
    headers = new_token(data)
    rec = write_tones(tmp_path / "r.wav", [("sad", 3.0), ("happy", 3.0)] * 6)
    pause = {"SERKIT_TEST_PAUSE_BEFORE_COMMIT": "30"} if step == "writing results" else None
    server = slow_server(data, tiny_model_path, delay=0.3 if step != "writing results" else 0.0, extra_env=pause)
    server.wait_ready()
    pid = server.http.post("/api/v1/people", headers=headers, json={"name": "Pat"}).json()["id"]
    accepted = []
    if step == "upload":
        sock = _slow_upload(server.port, headers, pid, rec.read_bytes()[:50000])
        wait_for(lambda: list((data / "incoming").glob("*.part")), timeout=30)
    else:
        accepted.append(submit(server, headers, pid, rec))
        if step == "queued":
            accepted.append(submit(server, headers, pid, rec, date="2026-02-02"))
        wait_for(lambda: job(server, headers, accepted[0]["job"]["id"])["state"] == "running", timeout=60)
        if step == "writing results":
            wait_for(lambda: any(line.get("message") == "pausing before commit" for line in server.log_lines()),
                     timeout=60)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    if step == "upload":
        sock.close()
    kills = 1
    if step == "running twice":  # killed again during the retry: the job is then failed, its audio deleted
        server = slow_server(data, tiny_model_path, delay=0.3)
        server.wait_ready()
        wait_for(lambda: job(server, headers, accepted[0]["job"]["id"])["attempts"] == 2, timeout=60)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        kills = 2
    server = slow_server(data, tiny_model_path, delay=0.0)
    try:
        server.wait_ready()
        for created in accepted:
            final = wait_for(lambda c=created: (j := job(server, headers, c["job"]["id"]))["state"]
                             in ("done", "failed") and j, timeout=120)
            assert final["state"] == ("failed" if kills == 2 else "done"), final
            assert final["attempts"] == (2 if created is accepted[0] else 1)  # the first was running at the kill
            if kills == 2:
                sid = created["session"]["id"]
                assert "not retried again" in final["error"]
                assert server.http.get(f"/api/v1/sessions/{sid}/recording", headers=headers).status_code == 404
        sessions = server.http.get(f"/api/v1/people/{pid}/sessions", headers=headers).json()
        assert len(sessions) == len(accepted)  # nothing lost, nothing duplicated, the cut-off upload not stored
    finally:
        assert server.stop(signal.SIGTERM) in CLEAN_EXIT
    assert list((data / "uploads").iterdir()) == [] and list((data / "incoming").iterdir()) == []
    assert not list((data / "results").glob(".*"))
    db = sqlite3.connect(data / "serkit.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('running', 'queued')").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM sessions WHERE audio IS NOT NULL").fetchone()[0] == 0
    db.close()
