"""Running the service under uvicorn (``serkit serve``): JSON logs, graceful stop on SIGTERM."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import uvicorn

from serkit.inference.api import EmotionModel
from serkit.serve.app import create_app
from serkit.serve.logs import log_config
from serkit.serve.results import remove_session_files, remove_tree
from serkit.serve.settings import ServeSettings
from serkit.serve.store import Store


@contextmanager
def _store(settings: ServeSettings):
    settings.make_dirs()
    store = Store(settings.db_path)
    try:
        yield store
    finally:
        store.close()


def create_token(settings: ServeSettings, name: str, *, expires_days: float | None = None) -> str:
    """A new API token (printed once; the database keeps only its hash)."""
    with _store(settings) as store:
        return store.create_token(name, expires_days=expires_days)


def list_tokens(settings: ServeSettings) -> list[dict]:
    with _store(settings) as store:
        return store.tokens()


def revoke_token(settings: ServeSettings, name: str) -> int:
    """Revoke the valid tokens named ``name``; a running server refuses them from their next request on (it
    reads the token table on every request)."""
    with _store(settings) as store:
        return store.revoke_tokens(name)


def delete_token_data(settings: ServeSettings, name: str) -> int:
    """Delete the people, sessions and files of the revoked or expired tokens named ``name``; returns the number
    of sessions deleted."""
    with _store(settings) as store:
        ids, audio = store.delete_token_data(name)
    sessions = [i for i in ids if not i.startswith("person:")]
    for sid in sessions:
        remove_session_files(settings, sid, None, None)
    for pid in (i.removeprefix("person:") for i in ids if i.startswith("person:")):
        remove_tree(settings.people_dir / pid)
    for upload in audio:
        (settings.uploads_dir / upload).unlink(missing_ok=True)
    return len(sessions)


def run(settings: ServeSettings, load: Callable[[str | None], EmotionModel] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; uvicorn then stops taking requests and the app's shutdown waits for the
    running job (``settings.shutdown_grace`` seconds) before it is stopped and marked failed."""
    app = create_app(settings, load)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=log_config(), access_log=False,
                            timeout_graceful_shutdown=max(5, int(settings.shutdown_grace)), server_header=False)
    uvicorn.Server(config).run()
