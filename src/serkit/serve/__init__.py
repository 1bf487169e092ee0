"""serkit as a service: a REST API (FastAPI under uvicorn) and a web page over one loaded model.

``serkit serve`` runs :func:`serkit.serve.server.run`; :func:`serkit.serve.app.create_app` builds the ASGI app
(tests use it with FastAPI's test client). Storage is SQLite plus result files in the data folder
(:mod:`serkit.serve.store`); analyses run one at a time in a job thread (:mod:`serkit.serve.runner`).
"""

from serkit.serve.settings import ServeSettings

__all__ = ["ServeSettings"]
