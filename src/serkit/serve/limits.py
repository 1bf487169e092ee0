"""Request limits: the body size (413 before the body is read) and a per-token rate limit (429)."""

from __future__ import annotations

import json
import math
import threading
import time


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: a request declaring a body over the limit is answered 413 without reading any of it; a
    body without a length (chunked) is counted as it arrives and cut off with 413 once over the limit, so at most
    the limit (plus one chunk) is ever read. Uploads (multipart forms) may be ``limit`` bytes, other bodies
    (JSON of a few hundred bytes) ``other_limit``."""

    def __init__(self, app, limit: int, other_limit: int = 1 << 20):
        self.app, self.upload_limit, self.other_limit = app, limit, other_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        upload = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        limit = self.upload_limit if upload else min(self.upload_limit, self.other_limit)
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await _reply(send, 400, "Content-Length: not a number")
            if declared > limit:
                return await _reply(send, 413, _too_large(declared, limit, upload))
        received = 0
        started = rejected = False

        async def counting_receive():
            # The 413 goes out here, at once: the app may turn the exception below into an error of its own
            # (FastAPI answers 400 to any failure while parsing a form), which tracking_send then drops.
            nonlocal received, started, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        rejected = started = True
                        await _reply(send, 413, _too_large(received, limit, upload))
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            pass


def _too_large(size: int, limit: int, upload: bool) -> str:
    if upload:
        return (f"upload too large: {size / 2**20:.1f} MB over the limit of {limit / 2**20:.1f} MB "
                "(the operator sets it with --max-upload-mb)")
    return f"request body too large: {size} bytes over the limit of {limit} bytes for a request that is not an upload"


async def _reply(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """Token buckets, one per API token: ``per_minute`` requests a minute with a burst of as many."""

    def __init__(self, per_minute: int):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: int) -> float:
        """0 when the request may go ahead, else the seconds until it may (for Retry-After)."""
        if self.capacity <= 0:
            return 0.0
        with self._lock:
            t = time.monotonic()
            level, last = self._buckets.get(key, (self.capacity, t))
            level = min(self.capacity, level + (t - last) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, t)
                return 0.0
            self._buckets[key] = (level, t)
            return max(1.0, math.ceil((1.0 - level) / self.rate))
