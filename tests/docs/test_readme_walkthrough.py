"""The README runs as written: its serve command starts quietly and says, last, where it is
ready; its walkthrough with its continuation in docs/walkthrough.md (enroll two Yale subjects,
verify, identify, list, refuse, delete) gives the responses it shows, apart from timestamps,
distances and scores, each shown as `python -m json.tool` prints it. A real server process
with the real model, as a user would start it; only the port differs (the README's `URL=` line
is pointed at it) and `.venv/bin/python` is this interpreter when there is no .venv here. The
default threshold and its test metrics stated in docs/models.md are the artefact's."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from app.core.config import REPO_ROOT
from tests.conftest import DATA_DIR
from tests.docs import walkthrough

pytestmark = pytest.mark.slow
NOISE = ("oneDNN custom operations", "absl::InitializeLog", "cpu_feature_guard",
         "alembic.runtime.plugins", "alembic.runtime.migration")


def _python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_is_the_one_the_test_starts():
    setup = walkthrough.README.read_text().split("## Set-up", 1)[1]
    serve_line = re.search(r"```sh\n(.*?)\n```", setup, re.S).group(1)
    assert serve_line.rstrip().endswith(".venv/bin/python -m app serve"), serve_line


@pytest.fixture
def server(tmp_path):
    if not (DATA_DIR / "yalefaces").is_dir():
        pytest.fail(f"the walkthrough needs {DATA_DIR / 'yalefaces'}")
    env = {**os.environ, "FACEAPI_DATABASE_URL": f"sqlite:///{tmp_path / 'walk.db'}",
           "PYTHONPATH": str(REPO_ROOT), "FACEAPI_DATA_DIR": str(DATA_DIR)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the serve command must quiet TensorFlow itself
    subprocess.run([_python(), "-m", "app", "migrate"], env=env, check=True, cwd=REPO_ROOT,
                   capture_output=True)
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([_python(), "-m", "app", "serve", "--port", str(port)], env=env,
                                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    ready = f"ready at {url} (docs: /docs, demo: /)"
    deadline = time.monotonic() + 300
    try:
        while ready not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {ready!r}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, env, log_path.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_readme_walkthrough_gives_the_responses_it_shows(server):
    url, env, startup = server
    noisy = [line for line in startup.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, noisy
    assert "loading and warming up the model" in startup
    steps = [step for _, step in walkthrough.all_steps()]
    shown = [s for s in steps if s.kind]
    assert len(shown) >= 10  # enroll x2, verify x2, identify x2, list, refusal, delete, 404
    outputs = walkthrough.run_steps(steps, url, _python(), env)
    problems = {s.command.strip(): walkthrough.compare(s, out)
                for s, out in zip(steps, outputs) if s.kind}
    assert not {c: p for c, p in problems.items() if p}, problems


def test_walkthrough_responses_are_shown_as_json_tool_prints_them():
    located = walkthrough.all_steps()
    assert {path for path, _ in located} == {walkthrough.README, walkthrough.CONTINUED}
    problems = {f"{path.name}: {step.command.strip()[:80]}": walkthrough.shown_as_json_tool(step)
                for path, step in located}
    assert not {c: p for c, p in problems.items() if p}, problems
    assert walkthrough.pretty(json.loads('{"box": [1.0, 2.5]}')) == '{\n    "box": [\n        1.0,\n        2.5\n    ]\n}'


def test_models_doc_threshold_is_the_one_the_service_uses(model_artifact):
    from app.core.config import Settings

    text = (REPO_ROOT / "docs" / "models.md").read_text()
    stated = re.search(r"default model's FAR 1e-3 threshold, ([0-9.]+)", text)
    assert stated, "docs/models.md no longer states the default threshold"
    policy = Settings().threshold_policy
    assert policy == "far_1e-3"
    assert float(stated.group(1)) == model_artifact.threshold_for(policy)
    at = model_artifact.test_metrics_at(policy)
    rates = re.search(r"accepts ([0-9.]+) % of genuine pairs and ([0-9.]+) % of impostor", text)
    assert at and rates, "docs/models.md no longer states the test metrics at that threshold"
    assert float(rates.group(1)) == round(100 * at["tar"], 1)
    assert float(rates.group(2)) == round(100 * at["far"], 2)


def test_agree_catches_a_changed_decision():
    shown = {"match": True, "distance": 0.2, "face": {"box": [1.0, 2.0], "faces_detected": 1}}
    assert not walkthrough.agree(shown, {**shown, "distance": 0.3})
    assert walkthrough.agree(shown, {**shown, "match": False})
    assert walkthrough.agree(shown, {**shown, "extra": 1})
    assert walkthrough.agree(shown, {**shown, "face": {"box": [1.0, 2.0], "faces_detected": 2}})
