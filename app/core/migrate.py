"""Alembic, driven from code: `python -m app migrate` and the start-up schema check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import app

# migrations/ sits beside the app package both in a checkout (the repository root) and in an
# installed wheel (site-packages), so no repository path is needed.
MIGRATIONS = Path(app.__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    if not (MIGRATIONS / "env.py").is_file():
        raise RuntimeError(f"Alembic migrations not found at {MIGRATIONS}; reinstall faceapi")
    # no alembic.ini: it only configures the `alembic` command line (logging, script location)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head", embedding_width: tuple[int, str] | None = None) -> None:
    """`embedding_width`: (values, model version) of the model whose embeddings the columns
    will hold (migration 0005); by default the artefact that the settings name."""
    cfg = alembic_config(url)
    if embedding_width is not None:
        cfg.attributes["embedding_width"] = embedding_width
    command.upgrade(cfg, revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
