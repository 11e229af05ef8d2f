"""What the benchmarks share: a free loopback port, the service started as an operator
starts it, and writing one block of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.core.config import REPO_ROOT as REPO

DOCS = REPO / "docs" / "benchmarks.md"


@contextlib.contextmanager
def timing_lock(path: str = "/tmp/timing.lock"):
    """Hold the machine's timing lock (as `flock /tmp/timing.lock` does) for the timed part
    of a long benchmark only, so that its untimed work does not keep other timings waiting."""
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_checkout(ref: str) -> Path:
    """The files of commit `ref` (git archive) under /tmp, made once and reused: the build to
    compare with, served and measured beside this one."""
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, check=True, text=True,
                         capture_output=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"faceapi-baseline-{sha}"
    if not (path / "app").is_dir():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    return path


def build_default_model(repo: Path) -> str:
    """The default model version of the build checked out in `repo` (its own config)."""
    import re

    text = (Path(repo) / "app" / "core" / "config.py").read_text()
    return re.search(r'^DEFAULT_MODEL = "([^"]+)"', text, re.M).group(1)


class LocalService:
    """The README's start-up steps in a temporary folder: `python -m app migrate`, an admin and
    a client key (`create-key`), then `serve` on a free 127.0.0.1 port until /health/ready is 200.

    The environment is this process's minus every FACEAPI_* variable, plus `settings` (e.g.
    FACEAPI_MODEL) and a SQLite database in the folder; the server's log is `<tmp>/serve.log`.
    """

    def __init__(self, settings: dict[str, str] | None = None, *, nice: int = 0,
                 ready_timeout_s: float = 300.0, prefix: str = "faceapi-bench-",
                 repo: Path = REPO) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAPI_")}
        self.env.update(FACEAPI_DATABASE_URL=f"sqlite:///{self.tmp / 'bench.db'}",
                        FACEAPI_LOG_LEVEL="WARNING", TF_CPP_MIN_LOG_LEVEL="2", **(settings or {}))
        self.nice, self.ready_timeout_s = nice, ready_timeout_s
        self.repo = Path(repo)  # another checkout serves another build (a baseline)
        self.env["PYTHONPATH"] = str(self.repo)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        self.ready_s = float("nan")

    def _cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "app", *args], env=self.env, cwd=self.repo,
                              check=True, capture_output=True, text=True).stdout

    def __enter__(self) -> "LocalService":
        import httpx

        self._cli("migrate")
        for role in ("admin", "client"):
            self.keys[role] = self._cli("create-key", "--role", role).strip().splitlines()[-1]
        prefix = ["nice", "-n", str(self.nice)] if self.nice else []
        log = self.tmp / "serve.log"
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "app", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=self.env, cwd=self.repo, stdout=out, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        try:
            while True:
                try:
                    if httpx.get(f"{self.url}/health/ready", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the service exited with {self.proc.returncode}; see {log}")
                if time.monotonic() - t0 > self.ready_timeout_s:
                    raise RuntimeError(f"the service was not ready in {self.ready_timeout_s:.0f} s; see {log}")
                time.sleep(0.2)
        except BaseException:
            self.__exit__()
            raise
        self.ready_s = time.monotonic() - t0
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_docs_block(name: str, body: str, path: Path = DOCS) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` with `body`.

    Hand-written notes that follow a `<!-- name:notes ... -->` marker inside the block are
    kept, so a rerun regenerates the figures without losing the analysis written below them.
    """
    text = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.index(start) + len(start), text.index(end)
    old, marker = text[i:j], f"<!-- {name}:notes"
    notes = "\n" + old[old.index(marker):].strip() + "\n" if marker in old else ""
    path.write_text(text[:i] + "\n" + body.strip() + "\n" + notes + text[j:])
