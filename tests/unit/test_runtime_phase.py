"""The model services' phase (app/runtime.py): loading, then ready with the services or failed;
a reader gets the services only when ready, else NotReady (503 not_ready) saying which."""

from __future__ import annotations

import re

import pytest

from app.domain import errors
from app.runtime import NOT_READY, START_FAILED, ModelServices, Models, Phase


def test_loading_then_ready_hands_out_the_services():
    models = Models()
    assert models.phase is Phase.loading and models.services is None
    with pytest.raises(errors.NotReady, match=re.escape(NOT_READY)):
        models.require()
    services = ModelServices(faces=object(), worker=object(), detect_pool=object())
    models.ready(services)
    assert models.phase is Phase.ready
    assert models.services is services and models.require() is services


def test_a_failed_start_says_so_and_hands_out_nothing():
    models = Models()
    models.failed()
    assert models.phase is Phase.failed and models.services is None
    with pytest.raises(errors.NotReady, match=re.escape(START_FAILED)) as caught:
        models.require()
    assert caught.value.status == 503 and caught.value.code == "not_ready"
