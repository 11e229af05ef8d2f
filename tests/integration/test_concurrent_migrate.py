"""Replicas started together each run `python -m app migrate` (docker-compose.yml: `migrate &&
serve` in every api container) against one empty PostgreSQL database: they take turns on an
advisory lock (migrations/env.py), so every one succeeds and the schema is migrated once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect

from app.core.config import REPO_ROOT
from app.core.migrate import current_revision, head_revision
from tests.conftest import fresh_postgres_url

pytestmark = pytest.mark.postgres


def test_replicas_migrating_one_empty_database_at_once_all_succeed(postgres_server, tmp_path):
    url, name = fresh_postgres_url(postgres_server, migrated=False)
    try:
        env = {**os.environ, "FACEAPI_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
        go = tmp_path / "go"
        # what `python -m app migrate` runs, started at the same moment once every process is loaded
        script = ("import os, sys, time\n"
                  "from app.core.migrate import upgrade\n"
                  "print('loaded', flush=True)\n"
                  f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
                  "upgrade(os.environ['FACEAPI_DATABASE_URL'])\n")
        procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(3)]
        for p in procs:
            assert p.stdout.readline().strip() == "loaded"
        go.touch()
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        engine = create_engine(url)
        try:
            assert current_revision(engine) == head_revision()
            assert {"persons", "api_keys"} <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    finally:
        postgres_server.drop_database(name)
