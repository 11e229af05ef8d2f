"""Shared fixtures for the Omniglot tests: real data from ../shared/data, read in place."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from model.common import paths
from model.omniglot import data as om
from tests.conftest import require_data


@pytest.fixture(scope="session")
def omniglot_28():
    """Background + evaluation sets at 28x28 (uint8 cache under var/cache)."""
    require_data(paths.data_dir() / "omniglot" / "images_background.zip")
    require_data(paths.data_dir() / "omniglot" / "images_evaluation.zip")
    return om.load_set("background", 28), om.load_set("evaluation", 28)


@pytest.fixture(scope="session")
def splits_28(omniglot_28):
    return om.paper_splits(*omniglot_28)
