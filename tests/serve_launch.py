"""``python tests/serve_launch.py DATA_DIR PORT MODEL DELAY [GRACE]``: the real server (uvicorn, its signal
handling, the job thread) with a model ``DELAY`` seconds slower per batch, so that a test can kill it mid-job."""

from __future__ import annotations

import sys

from serkit.inference import load_model
from serkit.serve.server import run
from serkit.serve.settings import ServeSettings
from serve_helpers import SlowModel

if __name__ == "__main__":
    data_dir, port, model_path, delay = sys.argv[1:5]
    grace = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    run(ServeSettings(data_dir=data_dir, port=int(port), rate_limit=0, shutdown_grace=grace),
        load=lambda spec: SlowModel(load_model(model_path), float(delay)))
