"""Load benchmark of ``serkit serve`` on the loopback interface (bounded in count and time).

1. Predict: ``--requests`` (200) requests of one 3 s clip from ``--clients`` (16) concurrent clients.
2. Analysis: ``--jobs`` (20) recordings of ``--job-seconds`` s submitted at once as sessions (one client each,
   polling its job), while the same ``--clients`` clients send another ``--requests`` predict requests.
   (One token sends all of these, so the server is started with its per-token shares raised to match:
   ``--predict-per-token``, ``--queue-per-token``.)
3. Abuse (``--abuse-seconds``, 120): a second server with the per-token limits at their defaults; a hostile
   token sends, for that long and all at once, sessions of ``--abuse-session-minutes`` (30) of speech, predicts
   of 32 clips of 60 s, bodies of 100 parts of 900 kB, a WAV header claiming 20,000 s at 1 Hz, and 6 hours of
   constant samples as FLAC; meanwhile an honest token sends one 3 s predict at a time and a 30 s session every
   15 s. Reported side by side: each token's answers by status, the honest predicts' latency (target: p95 under
   2 s), the time from the honest sessions' upload to their job starting (target: under 30 s), and the server's
   memory (bounded).

Reported: p50 / p95 / max latency, throughput, errors (any answer other than 200 / 202, any failed job), the
server's resident memory (peak, and after the first phase against the end: growth over the run). The server is
a separate ``serkit serve`` process with the default model (or ``--model``), rate limit off, queue large
enough for the jobs. Writes ``docs/benchmarks/serve.md`` (``--out``). Run it on an otherwise idle machine:

    OMP_NUM_THREADS=1 python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --requests 10 --clients 2 --jobs 2 --out /tmp/serve.md   # a quick check
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SR = 16000


def clip_bytes(seconds: float = 3.0) -> bytes:
    """A 3 s clip of an example recording (a held-out speaker of the default model), as WAV."""
    y, sr = sf.read(EXAMPLES / "ravdess-01-angry-strong.flac", dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, y[: round(seconds * sr)], sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def recording_bytes(seconds: float) -> bytes:
    """The example clips in turn with 0.6 s pauses, ``seconds`` long, as WAV."""
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(EXAMPLES.glob("*.wav")) + sorted(EXAMPLES.glob("*.flac"))]
    parts, total, k = [], 0, 0
    while total < seconds * SR:
        for part in (clips[k % len(clips)], np.zeros(round(0.6 * SR), np.float32)):
            parts.append(part)
            total += len(part)
        k += 1
    buf = io.BytesIO()
    sf.write(buf, np.concatenate(parts)[: round(seconds * SR)], SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Memory(threading.Thread):
    """Samples the server's resident memory every 0.2 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append((time.monotonic(), rss_kb(self.pid)))
            except OSError:
                return
            self.stop.wait(0.2)


def predict_load(base: str, headers: dict, clip: bytes, requests: int, clients: int, deadline: float) -> dict:
    latencies, errors, lock, counter = [], [], threading.Lock(), iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                t = time.perf_counter()
                try:
                    r = http.post("/api/v1/predict", files={"files": ("clip.wav", clip, "audio/wav")})
                    ok = r.status_code == 200 and not r.json()["failures"]
                    detail = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                with lock:
                    (latencies if ok else errors).append(time.perf_counter() - t if ok else detail)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    return summarize(latencies, errors, wall, requests)


def summarize(latencies: list[float], errors: list, wall: float, planned: int) -> dict:
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"planned": planned, "ok": len(latencies), "errors": len(errors), "error_examples": errors[:3],
            "wall_s": round(wall, 2), "throughput_per_s": round(len(latencies) / wall, 2) if wall else None,
            "p50_s": round(float(np.percentile(lat, 50)), 3), "p95_s": round(float(np.percentile(lat, 95)), 3),
            "max_s": round(float(np.max(lat)), 3)}


def analysis_load(base: str, headers: dict, recording: bytes, jobs: int, deadline: float) -> dict:
    results, errors, lock = [], [], threading.Lock()
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        pid = http.post("/api/v1/people", json={"name": "bench"}).json()["id"]

    def client(k: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            t = time.perf_counter()
            r = http.post(f"/api/v1/people/{pid}/sessions", files={"file": (f"r{k}.wav", recording, "audio/wav")},
                          data={"date": f"2026-01-{1 + k % 28:02d}"})
            submit = time.perf_counter() - t
            if r.status_code != 202:
                with lock:
                    errors.append(f"submit {r.status_code} {r.text[:200]}")
                return
            jid = r.json()["job"]["id"]
            while time.monotonic() < deadline:
                job = http.get(f"/api/v1/jobs/{jid}").json()
                if job["state"] in ("done", "failed"):
                    with lock:
                        if job["state"] == "done":
                            results.append((submit, time.perf_counter() - t))
                        else:
                            errors.append(f"job failed: {job['error']}")
                    return
                time.sleep(0.5)
            with lock:
                errors.append("job not finished before the time limit")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    done = summarize([r[1] for r in results], errors, wall, jobs)
    done["submit_p95_s"] = round(float(np.percentile([r[0] for r in results], 95)), 3) if results else None
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--job-seconds", type=float, default=60.0, help="length of each analysed recording")
    ap.add_argument("--time-limit", type=float, default=900.0, help="seconds for the whole run")
    ap.add_argument("--model", default=None)
    ap.add_argument("--abuse-seconds", type=float, default=120.0, help="length of the abuse phase (0: skip it)")
    ap.add_argument("--abuse-session-minutes", type=float, default=30.0)
    ap.add_argument("--skip-load", action="store_true", help="only the abuse phase")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "serve.md")
    args = ap.parse_args()
    deadline = time.monotonic() + args.time_limit
    if args.skip_load:
        abuse = abuse_phase(args) if args.abuse_seconds > 0 else None
        write_report({"abuse": abuse, "settings": vars(args) | {"out": str(args.out)},
                      "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}, args.out)
        print(json.dumps(abuse, indent=1))
        return

    work = Path(tempfile.mkdtemp(prefix="serkit-bench-serve-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "serkit.cli", "serve", "--data-dir", str(work / "data")]
    token = subprocess.run(cli + ["--create-token", "bench"], env=env, capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(cli + ["--port", str(port), "--rate-limit", "0", "--queue-size", str(args.jobs + 8),
                                     "--queue-per-token", str(args.jobs + 8), "--predict-per-token",
                                     str(args.clients), "--max-uploads", str(args.clients + 2)]
                              + (["--model", args.model] if args.model else []), env=env,
                              stderr=(work / "server.log").open("wb"))
    memory = Memory(server.pid)
    try:
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; log: {work / 'server.log'}")
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        memory.start()
        clip, recording = clip_bytes(), recording_bytes(args.job_seconds)
        predict_load(base, headers, clip, min(8, args.requests), 2, deadline)  # warm-up, not counted
        rss_start = rss_kb(server.pid)
        predict = predict_load(base, headers, clip, args.requests, args.clients, deadline)
        rss_after_predict = rss_kb(server.pid)
        mixed: dict = {}
        background = threading.Thread(target=lambda: mixed.update(
            predict_load(base, headers, clip, args.requests, args.clients, deadline)))
        background.start()
        analysis = analysis_load(base, headers, recording, args.jobs, deadline)
        background.join()
        rss_end = rss_kb(server.pid)
        peak = rss_kb(server.pid, "VmHWM")
    finally:
        memory.stop.set()
        server.terminate()
        server.wait(60)
    abuse = abuse_phase(args) if args.abuse_seconds > 0 else None
    row = {"predict": predict, "predict_during_analysis": mixed, "analysis": analysis, "abuse": abuse,
           "memory_mb": {"after_warmup": round(rss_start / 1024, 1), "after_predict": round(rss_after_predict / 1024, 1),
                         "end": round(rss_end / 1024, 1), "peak": round(peak / 1024, 1)},
           "settings": vars(args) | {"out": str(args.out)}, "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    write_report(row, args.out)
    print(json.dumps(row, indent=1))


def _start_server(args, work: Path, extra: list[str]) -> tuple[subprocess.Popen, str, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "serkit.cli", "serve", "--data-dir", str(work / "data")]
    tokens = {}
    for name in ("hostile", "honest"):
        out = subprocess.run(cli + ["--create-token", name], env=env, capture_output=True, text=True, check=True)
        tokens[name] = {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(cli + ["--port", str(port), *extra] + (["--model", args.model] if args.model else []),
                              env=env, stderr=(work / "server.log").open("wb"))
    started = time.monotonic()
    while True:
        if server.poll() is not None or time.monotonic() - started > 300:
            raise SystemExit(f"the server did not start; log: {work / 'server.log'}")
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return server, base, tokens
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def _constant_flac(seconds: int) -> bytes:
    buf = io.BytesIO()
    block = np.full(10 * SR, 0.25, np.float32)
    with sf.SoundFile(buf, "w", SR, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(block)
    return buf.getvalue()


def _flac_bytes(y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def abuse_phase(args) -> dict:
    """Phase 3 (see the module docstring): a hostile and an honest token at once, the per-token limits at their
    defaults; returns both tokens' figures and the server's memory."""
    work = Path(tempfile.mkdtemp(prefix="serkit-bench-abuse-"))
    server, base, tokens = _start_server(args, work, [])
    memory = Memory(server.pid)
    memory.start()
    stop_at = time.monotonic() + args.abuse_seconds
    counts: dict[str, dict[str, int]] = {"hostile": {}, "honest": {}}
    lock = threading.Lock()
    honest_predict: list[float] = []
    honest_start: list[float] = []
    honest_jobs: list[str] = []

    def count(who: str, key: str) -> None:
        with lock:
            counts[who][key] = counts[who].get(key, 0) + 1

    speech = sf.read(io.BytesIO(recording_bytes(60.0)), dtype="float32")[0]
    long_session = _flac_bytes(np.tile(speech, int(args.abuse_session_minutes)))
    constant = _constant_flac(6 * 3600)  # 6 h of one sample value: a few hundred kB
    one_hz = io.BytesIO()
    sf.write(one_hz, np.zeros(20000, np.int16), 1, format="WAV", subtype="PCM_16")
    minute_clip = recording_bytes(60.0)
    part = b"\0" * 900_000
    flood = b"".join(b'--f\r\nContent-Disposition: form-data; name="files"; filename="p.wav"\r\n\r\n' + part + b"\r\n"
                     for _ in range(100)) + b"--f--\r\n"
    short_clip, short_session = clip_bytes(), recording_bytes(30.0)

    def hostile(kind: str) -> None:
        with httpx.Client(base_url=base, headers=tokens["hostile"], timeout=180) as http:
            pid = http.post("/api/v1/people", json={"name": "h"}).json()["id"]
            while time.monotonic() < stop_at:
                try:
                    if kind == "sessions":
                        r = http.post(f"/api/v1/people/{pid}/sessions", files={"file": ("long.flac", long_session)})
                    elif kind == "predicts":
                        r = http.post("/api/v1/predict", files=[("files", (f"m{k}.wav", minute_clip))
                                                                for k in range(32)])
                    elif kind == "parts":
                        r = http.post("/api/v1/predict", content=flood,
                                      headers={"Content-Type": "multipart/form-data; boundary=f"})
                    else:
                        for name, body in (("one_hz.wav", one_hz.getvalue()), ("constant.flac", constant)):
                            r = http.post(f"/api/v1/people/{pid}/sessions", files={"file": (name, body)})
                            count("hostile", f"{kind} {r.status_code}")
                        continue
                    count("hostile", f"{kind} {r.status_code}")
                    if r.status_code in (429, 503):
                        time.sleep(float(r.headers.get("retry-after", 1)))
                except httpx.HTTPError as exc:
                    count("hostile", f"{kind} {type(exc).__name__}")

    def honest_predicts() -> None:
        with httpx.Client(base_url=base, headers=tokens["honest"], timeout=180) as http:
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                r = http.post("/api/v1/predict", files={"files": ("clip.wav", short_clip)})
                count("honest", f"predict {r.status_code}")
                if r.status_code == 200:
                    with lock:
                        honest_predict.append(time.perf_counter() - t)
                time.sleep(0.2)

    def honest_sessions() -> None:
        with httpx.Client(base_url=base, headers=tokens["honest"], timeout=180) as http:
            pid = http.post("/api/v1/people", json={"name": "o"}).json()["id"]
            while time.monotonic() < stop_at:
                t = time.monotonic()
                r = http.post(f"/api/v1/people/{pid}/sessions", files={"file": ("s.wav", short_session)})
                count("honest", f"sessions {r.status_code}")
                if r.status_code == 202:
                    jid = r.json()["job"]["id"]
                    honest_jobs.append(jid)
                    while time.monotonic() < stop_at + 120:
                        job = http.get(f"/api/v1/jobs/{jid}").json()
                        if job["state"] != "queued":
                            with lock:
                                honest_start.append(time.monotonic() - t)
                            break
                        time.sleep(0.25)
                time.sleep(max(0.0, 15.0 - (time.monotonic() - t)))

    threads = [threading.Thread(target=hostile, args=(k,)) for k in ("sessions", "predicts", "parts", "headers")]
    threads += [threading.Thread(target=honest_predicts), threading.Thread(target=honest_sessions)]
    started = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - started
    with httpx.Client(base_url=base, headers=tokens["honest"], timeout=60) as http:
        states = [http.get(f"/api/v1/jobs/{j}").json()["state"] for j in honest_jobs]
    peak = rss_kb(server.pid, "VmHWM")
    memory.stop.set()
    server.terminate()
    server.wait(120)
    lat = np.array(honest_predict) if honest_predict else np.array([np.nan])
    return {"seconds": round(wall, 1), "counts": counts,
            "honest_predict": {"n": len(honest_predict), "p50_s": round(float(np.percentile(lat, 50)), 3),
                               "p95_s": round(float(np.percentile(lat, 95)), 3), "max_s": round(float(lat.max()), 3)},
            "honest_job_start_s": {"n": len(honest_start), "max": round(max(honest_start), 1) if honest_start
                                   else None, "mean": round(float(np.mean(honest_start)), 1) if honest_start
                                   else None},
            "honest_job_states": {st: states.count(st) for st in sorted(set(states))},
            "memory_mb": {"peak": round(peak / 1024, 1),
                          "max_sampled": round(max(v for _, v in memory.samples) / 1024, 1) if memory.samples
                          else None}}


def write_report(row: dict, out: Path) -> None:
    s = row["settings"]
    if row.get("predict") is None:  # --skip-load: the abuse phase alone
        lines = ["# serkit serve under abuse (loopback)", ""] + _abuse_lines(row["abuse"], row)
        from serkit.utils import atomic_write_text

        atomic_write_text(out, "\n".join(lines))
        return
    lines = [
        "# serkit serve under load (loopback)", "",
        (f"`python benchmarks/bench_serve.py --requests {s['requests']} --clients {s['clients']} --jobs {s['jobs']} "
         f"--job-seconds {s['job_seconds']:g}` on {row['machine']}, OMP_NUM_THREADS={row['omp_num_threads']}; "
         "server: `serkit serve` with the default model, rate limit off, as many uploads at once as clients. The predicted clip is 3 s of an example "
         "recording; the analysed recordings are the example clips joined with pauses."), "",
        "| phase | requests ok / planned | errors | p50 (s) | p95 (s) | max (s) | throughput (/s) | wall (s) |",
        "|---|---|---|---|---|---|---|---|"]
    for name, key in (("predict, 3 s clip", "predict"), ("predict during the analysis jobs", "predict_during_analysis"),
                      ("analysis job, submit to done", "analysis")):
        r = row[key]
        if r:
            lines.append(f"| {name} | {r['ok']} / {r['planned']} | {r['errors']} | {r['p50_s']} | {r['p95_s']} | "
                         f"{r['max_s']} | {r['throughput_per_s']} | {r['wall_s']} |")
    m = row["memory_mb"]
    lines += ["", (f"Server resident memory (MB): {m['after_warmup']} after warm-up, {m['after_predict']} after "
                   f"the predict phase, {m['end']} at the end, peak {m['peak']}."), ""]
    examples = [e for k in ("predict", "predict_during_analysis", "analysis") for e in (row[k] or {}).get(
        "error_examples", [])]
    if examples:
        lines += ["Errors (first few):", ""] + [f"- `{e}`" for e in examples] + [""]
    if row.get("abuse"):
        lines += ["## Under abuse: a hostile token beside an honest one", ""] + _abuse_lines(row["abuse"], row)
    from serkit.utils import atomic_write_text

    atomic_write_text(out, "\n".join(lines))



def _abuse_lines(a: dict, row: dict) -> list[str]:
    s = row["settings"]
    hp, js = a["honest_predict"], a["honest_job_start_s"]
    lines = [(f"`python benchmarks/bench_serve.py --abuse-seconds {s['abuse_seconds']:g}` (phase 3) on {row['machine']}: "
              "a second server with the per-token limits at their defaults (rate limit 120 a minute, a quarter of "
              "the queue, one /predict in progress per token, two job workers, one job at a time per token while "
              f"another waits). For {a['seconds']:.0f} s the hostile token sent sessions of "
              f"{s['abuse_session_minutes']:g} min of speech, predicts of 32 clips of 60 s, bodies of 100 parts of "
              "900 kB, a WAV header claiming 20,000 s at 1 Hz and 6 h of constant samples as FLAC, each on its own "
              "client, as fast as the answers came; the honest token sent one 3 s predict at a time and a 30 s "
              "session every 15 s."), "",
             "| token | answers (kind, status: count) |", "|---|---|"]
    for who in ("hostile", "honest"):
        lines.append(f"| {who} | " + ", ".join(f"{k}: {v}" for k, v in sorted(a["counts"][who].items())) + " |")
    lines += ["", "| the honest token | measured | target |", "|---|---|---|",
              f"| predict latency p50 / p95 / max | {hp['p50_s']} / {hp['p95_s']} / {hp['max_s']} s ({hp['n']} "
              "answered) | p95 under 2 s |",
              f"| upload to job start, mean / max | {js['mean']} / {js['max']} s ({js['n']} sessions) | under 30 s |",
              f"| its jobs at the end | {a['honest_job_states']} | |",
              f"| server memory, peak resident | {a['memory_mb']['peak']} MB | bounded |", ""]
    return lines


if __name__ == "__main__":
    main()
