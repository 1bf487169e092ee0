"""Load benchmark of ``serkit serve`` on the loopback interface (bounded in count and time).

1. Predict: ``--requests`` (200) requests of one 3 s clip from ``--clients`` (16) concurrent clients.
2. Analysis: ``--jobs`` (20) recordings of ``--job-seconds`` s submitted at once as sessions (one client each,
   polling its job), while the same ``--clients`` clients send another ``--requests`` predict requests.

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
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "serve.md")
    args = ap.parse_args()
    deadline = time.monotonic() + args.time_limit

    work = Path(tempfile.mkdtemp(prefix="serkit-bench-serve-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "serkit.cli", "serve", "--data-dir", str(work / "data")]
    token = subprocess.run(cli + ["--create-token", "bench"], env=env, capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(cli + ["--port", str(port), "--rate-limit", "0", "--queue-size", str(args.jobs + 8)]
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
    row = {"predict": predict, "predict_during_analysis": mixed, "analysis": analysis,
           "memory_mb": {"after_warmup": round(rss_start / 1024, 1), "after_predict": round(rss_after_predict / 1024, 1),
                         "end": round(rss_end / 1024, 1), "peak": round(peak / 1024, 1)},
           "settings": vars(args) | {"out": str(args.out)}, "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    write_report(row, args.out)
    print(json.dumps(row, indent=1))


def write_report(row: dict, out: Path) -> None:
    s = row["settings"]
    lines = [
        "# serkit serve under load (loopback)", "",
        (f"`python benchmarks/bench_serve.py --requests {s['requests']} --clients {s['clients']} --jobs {s['jobs']} "
         f"--job-seconds {s['job_seconds']:g}` on {row['machine']}, OMP_NUM_THREADS={row['omp_num_threads']}; "
         "server: `serkit serve` with the default model, rate limit off. The predicted clip is 3 s of an example "
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
    from serkit.utils import atomic_write_text

    atomic_write_text(out, "\n".join(lines))


if __name__ == "__main__":
    main()
