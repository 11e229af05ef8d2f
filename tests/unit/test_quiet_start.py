"""Serve's start-up noise filter: TensorFlow's known C++ notices on stderr are dropped, and
everything else, a traceback at exit included, still gets through."""

from __future__ import annotations

import os
import subprocess
import sys

from app.core.config import REPO_ROOT

SCRIPT = r"""
import logging, os, sys
from app.cli.quiet import silence_third_party_noise
logging.basicConfig(level=logging.INFO)
silence_third_party_noise()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"I0000 00:00:1795499650.883139   28682 port.cc:153] oneDNN custom operations are on. You may see\n")
os.write(2, b"I0000 00:00:1795499651.062989   28682 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use\n")
os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow\n")
os.write(2, b"E0000 00:00:1795499651.062989   28682 real.cc:1] a real TensorFlow error\n")
logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
logging.getLogger("app").info("an app log line")
print("our own line", file=sys.stderr)
raise SystemExit("a fatal message at exit")
"""


def test_known_noise_is_dropped_and_the_rest_passes():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    err = done.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "optimized to use", "To enable the following"):
        assert noise not in err
    assert "setup plugin" not in err  # alembic's INFO lines
    assert "a real TensorFlow error" in err and "our own line" in err and "an app log line" in err
    assert err.rstrip().endswith("a fatal message at exit")
