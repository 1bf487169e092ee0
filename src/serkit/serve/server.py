"""Running the service under uvicorn (``serkit serve``): JSON logs, graceful stop on SIGTERM."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn

from serkit.inference.api import EmotionModel
from serkit.serve.app import create_app
from serkit.serve.logs import log_config
from serkit.serve.model import load_service_model
from serkit.serve.settings import ServeSettings
from serkit.serve.store import Store


def create_token(settings: ServeSettings, name: str) -> str:
    """A new API token (printed once; the database keeps only its hash)."""
    settings.make_dirs()
    store = Store(settings.db_path)
    try:
        return store.create_token(name)
    finally:
        store.close()


def run(settings: ServeSettings, load: Callable[[str | None], EmotionModel] = load_service_model) -> None:
    """Serve until SIGTERM or SIGINT; uvicorn then stops taking requests and the app's shutdown waits for the
    running job (``settings.shutdown_grace`` seconds) before it is stopped and marked failed."""
    app = create_app(settings, load)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=log_config(), access_log=False,
                            timeout_graceful_shutdown=max(5, int(settings.shutdown_grace)), server_header=False)
    uvicorn.Server(config).run()
