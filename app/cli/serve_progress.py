"""What `python -m app serve` prints while it starts: the model takes about a minute to load
and warm up on 2 CPU cores, and nothing used to say so. A thread watches the app's runtime
(the same state /health/ready reports) and whether the port accepts connections, prints
progress, then, last, "ready at http://127.0.0.1:8000 (docs: /docs, demo: /)". It watches in
process rather than polling /health/ready, which would fill the access log."""

from __future__ import annotations

import socket
import threading
import time

from app.runtime import Phase

STILL_LOADING_EVERY_S = 15.0


def ready_line(url: str) -> str:
    return f"ready at {url} (docs: /docs, demo: /)"


def public_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"


def _accepting(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def report_progress(app, host: str, port: int, say=print, poll_s: float = 0.25) -> threading.Thread:
    url = public_url(host, port)
    connect_host = url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")

    def watch() -> None:
        say("loading and warming up the model (seconds on LiteRT; the first start also builds its "
            "model files, under a minute; up to a minute on Keras)...", flush=True)
        started, next_note = time.monotonic(), STILL_LOADING_EVERY_S
        while True:
            time.sleep(poll_s)
            runtime = getattr(app.state, "runtime", None)  # set when the app's start-up begins
            phase = runtime.models.phase if runtime is not None else Phase.loading
            if phase is Phase.failed:
                say(f"the model did not start (the log above says why); keys and /persons work, "
                    f"{url}/health/ready and the model routes answer 503", flush=True)
                return
            if phase is Phase.ready and _accepting(connect_host, port):
                say(ready_line(url), flush=True)
                return
            waited = time.monotonic() - started
            if waited >= next_note:
                say(f"still loading ({waited:.0f} s)...", flush=True)
                next_note += STILL_LOADING_EVERY_S

    thread = threading.Thread(target=watch, name="serve-progress", daemon=True)
    thread.start()
    return thread
