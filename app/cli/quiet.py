"""Start-up noise from third parties, silenced by default (FACEAPI_LOG_LEVEL=DEBUG shows it).

TensorFlow's C++ runtime writes its notices (the oneDNN and CPU-instruction lines, absl's
"before InitializeLog" warning) straight to file descriptor 2 before any setting such as
TF_CPP_MIN_LOG_LEVEL is read, so they are filtered at the descriptor: stderr goes through a
pipe and only those known lines are dropped; everything else, our logs and any traceback
included, passes unchanged. Alembic's INFO lines (plugin set-up, "Context impl") are not
about the service and go below the log level.
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import re
import sys
import threading

TF_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] (oneDNN custom operations are on"
    rb"|This TensorFlow binary is optimized|Local rendezvous is aborting)"
    rb"|To enable the following instructions: )")
QUIET_LOGGERS = ("alembic",)
_FATAL_REPORTS = None  # the file fatal-signal reports go to (kept open for the process)


def silence_third_party_noise() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's own later INFO/WARNING lines
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _filter_fd2(TF_NOISE)


def _filter_fd2(noise: re.Pattern[bytes]) -> None:
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    real = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as src, os.fdopen(os.dup(real), "wb", buffering=0) as dst:
            for line in iter(src.readline, b""):
                if not noise.match(line):
                    dst.write(line)

    # a fatal signal (SIGBUS, SIGSEGV) kills the pump with the process: its report goes straight
    # to the real stderr
    global _FATAL_REPORTS
    _FATAL_REPORTS = os.fdopen(os.dup(real), "w")
    faulthandler.enable(_FATAL_REPORTS)
    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    @atexit.register
    def _restore() -> None:  # runs after any traceback was printed: forward the rest, then stop
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the pump reads to EOF and ends
        thread.join(timeout=2)
