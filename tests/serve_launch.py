"""``python tests/serve_launch.py DATA_DIR PORT MODEL DELAY [GRACE]``: the real server (uvicorn, its signal
handling, the job thread) with a model ``DELAY`` seconds slower per batch, so that a test can kill it mid-job.

``SERKIT_TEST_PAUSE_BEFORE_COMMIT=SECONDS`` makes each job pause after its results are written beside their place
and before they are renamed into it (logging "pausing before commit"), so that a test can kill it there."""

from __future__ import annotations

import logging
import os
import sys
import time

from serkit.inference import load_model
from serkit.serve.server import run
from serkit.serve.settings import ServeSettings
from serve_helpers import SlowModel


def _pause_before_commit(seconds: float) -> None:
    from serkit.serve import results

    save = results.save_features

    def slow_save(features, folder):
        written = save(features, folder)
        logging.getLogger("serkit.serve").warning("pausing before commit", extra={"fields": {"folder": folder.name}})
        time.sleep(seconds)
        return written

    results.save_features = slow_save


if __name__ == "__main__":
    if os.environ.get("SERKIT_TEST_PAUSE_BEFORE_COMMIT"):
        _pause_before_commit(float(os.environ["SERKIT_TEST_PAUSE_BEFORE_COMMIT"]))
    data_dir, port, model_path, delay = sys.argv[1:5]
    grace = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    # the test recordings are tones of one synthetic 'person': no diarization (test_serve_voices.py covers it)
    run(ServeSettings(data_dir=data_dir, port=int(port), rate_limit=0, shutdown_grace=grace, speakers=False),
        load=lambda spec: SlowModel(load_model(model_path), float(delay)))
