"""Defaults only in Settings: every parameter elsewhere that has a default for a setting takes
Settings' field default, so changing one default (app/core/config.py) changes it everywhere."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from app.api.connections import GuardedHttpToolsProtocol, guarded_protocol
from app.core.config import Settings, body_bytes_for
from app.inference.litert import LiteRTNet, LiteRTOptions
from app.inference.worker import BatchingWorker
from app.services.faces import FaceService
from app.services.threshold import ThresholdPolicy
from app.vision.decode import DecodeLimits
from app.vision.detect import YuNetDetector
from app.vision.pipeline import EnrollRules


def settings_default(name: str):
    return Settings.model_fields[name].default


def dataclass_default(cls, name: str):
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def parameter_default(fn, name: str):
    return inspect.signature(fn).parameters[name].default


@pytest.mark.parametrize(("cls", "field", "setting"), [
    (EnrollRules, "min_face_size", "min_face_size"),
    (EnrollRules, "min_score", "enroll_min_score"),
    (EnrollRules, "dominance_ratio", "enroll_dominance_ratio"),
    (DecodeLimits, "max_bytes", "max_upload_bytes"),
    (DecodeLimits, "max_pixels", "max_pixels"),
    (DecodeLimits, "min_side", "min_image_side"),
    (ThresholdPolicy, "identify_fpir", "identify_fpir"),
    (LiteRTOptions, "threads", "litert_threads"),
])
def test_dataclass_default_is_the_settings_default(cls, field, setting):
    assert dataclass_default(cls, field) == settings_default(setting)


@pytest.mark.parametrize(("fn", "parameter", "setting"), [
    (ThresholdPolicy.choose, "identify_fpir", "identify_fpir"),
    (FaceService.__init__, "all_faces_max", "identify_all_faces_max"),
    (YuNetDetector.__init__, "input_side", "detect_max_side"),
    (guarded_protocol, "body_timeout_s", "request_body_timeout_s"),
    (guarded_protocol, "body_min_rate", "request_body_min_rate"),
    (BatchingWorker.__init__, "max_batch", "batch_max_size"),
    (BatchingWorker.__init__, "max_wait_ms", "batch_max_wait_ms"),
    (LiteRTNet.__init__, "threads", "litert_threads"),
])
def test_parameter_default_is_the_settings_default(fn, parameter, setting):
    assert parameter_default(fn, parameter) == settings_default(setting)


@pytest.mark.parametrize(("attribute", "setting"), [
    ("head_timeout_s", "request_head_timeout_s"),
    ("body_idle_timeout_s", "request_body_idle_timeout_s"),
    ("body_timeout_s", "request_body_timeout_s"),
    ("body_min_rate", "request_body_min_rate"),
    ("max_head_bytes", "max_request_head_bytes"),
])
def test_connection_guard_default_is_the_settings_default(attribute, setting):
    assert getattr(GuardedHttpToolsProtocol, attribute) == settings_default(setting)


def test_connection_guard_lingers_over_at_most_the_largest_body():
    """The body read and discarded after an early answer is at most the largest body the
    default settings accept (Settings.max_body_bytes)."""
    linger = GuardedHttpToolsProtocol.max_linger_bytes
    assert linger == body_bytes_for(settings_default("max_upload_bytes"))
    assert parameter_default(guarded_protocol, "max_linger_bytes") == linger
    assert Settings.model_construct().max_body_bytes == linger

