"""Fixtures of the migration tests (both databases)."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request, tmp_path):
    """An empty database, not migrated: SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url, name = fresh_postgres_url(server, migrated=False)
    yield url
    server.drop_database(name)
