"""The settings table in docs/operations.md is the one `Settings` generates: every variable, its
default and its meaning, with one owner (app/core/config.py)."""

from __future__ import annotations

from tests.docs import config_table


def test_the_documented_settings_are_the_settings():
    assert config_table.documented(config_table.DOC.read_text()) == config_table.table(), (
        "docs/operations.md's settings table is stale: run `python -m tests.docs.config_table`")
