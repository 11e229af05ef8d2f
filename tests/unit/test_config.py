import pytest

from app.core.config import Settings, load_settings


def test_defaults_are_safe(monkeypatch):
    s = Settings()
    assert s.database_url.startswith("sqlite:///") and s.max_upload_bytes == 10 * 1024 * 1024
    assert s.auth_disabled is False and s.cors_origins == [] and s.threshold is None


def test_env_values_are_read(monkeypatch):
    monkeypatch.setenv("FACEAPI_THRESHOLD", "0.42")
    monkeypatch.setenv("FACEAPI_BATCH_MAX_SIZE", "8")
    s = Settings()
    assert s.threshold == 0.42 and s.batch_max_size == 8


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("FACEAPI_TRESHOLD", "0.5", "FACEAPI_TRESHOLD"),  # typo: unknown setting
    ("FACEAPI_THRESHOLD", "-1", "THRESHOLD"),
    ("FACEAPI_BATCH_MAX_SIZE", "lots", "BATCH_MAX_SIZE"),
    ("FACEAPI_DATABASE_URL", "mysql://x", "DATABASE_URL"),
])
def test_bad_settings_fail_at_start_with_a_clear_message(monkeypatch, name, value, needle):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert needle in str(exc.value)
