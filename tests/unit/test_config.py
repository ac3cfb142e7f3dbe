"""Settings: environment prefix, placeholder secrets refused outside development, URLs."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.config import (
    DEV_BLOB_KEY,
    DEV_ID_HASH_KEY,
    PlaceholderSecretError,
    Settings,
    get_settings,
)

REAL_BLOB_KEY = base64.b64encode(os.urandom(32)).decode()
REAL_ID_HASH_KEY = "a-real-secret-id-hash-key"
REAL_LOGISTICS_TOKEN = "a-real-logistics-token"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's own SIMGATE_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("SIMGATE_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_development_setup() -> None:
    s = Settings()
    assert s.env == "development"
    assert s.blob_key == DEV_BLOB_KEY
    assert len(s.blob_key_bytes) == 32
    assert s.id_hash_key == DEV_ID_HASH_KEY
    assert s.blob_dir == Path("var") / "blobs"


@pytest.mark.parametrize("env", ["development", "test"])
def test_placeholder_secrets_allowed_outside_production(env: str) -> None:
    assert Settings(env=env).env == env  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secrets",
    [
        {},
        {"blob_key": REAL_BLOB_KEY, "logistics_token": REAL_LOGISTICS_TOKEN},
        {"id_hash_key": REAL_ID_HASH_KEY, "logistics_token": REAL_LOGISTICS_TOKEN},
        {"blob_key": REAL_BLOB_KEY, "id_hash_key": REAL_ID_HASH_KEY},
    ],
    ids=["all_default", "id_hash_key_default", "blob_key_default", "logistics_token_default"],
)
def test_production_refuses_placeholder_secrets(secrets: dict[str, str]) -> None:
    with pytest.raises((PlaceholderSecretError, ValidationError)) as info:
        Settings(env="production", **secrets)
    assert "SIMGATE_BLOB_KEY" in str(info.value)


def test_production_refuses_placeholders_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIMGATE_ENV", "production")
    with pytest.raises((PlaceholderSecretError, ValidationError)):
        Settings()
    monkeypatch.setenv("SIMGATE_BLOB_KEY", REAL_BLOB_KEY)
    monkeypatch.setenv("SIMGATE_ID_HASH_KEY", REAL_ID_HASH_KEY)
    monkeypatch.setenv("SIMGATE_LOGISTICS_TOKEN", REAL_LOGISTICS_TOKEN)
    s = Settings()
    assert s.env == "production"
    assert s.blob_key_bytes == base64.b64decode(REAL_BLOB_KEY)


def test_production_with_real_secrets() -> None:
    s = Settings(
        env="production",
        blob_key=REAL_BLOB_KEY,
        id_hash_key=REAL_ID_HASH_KEY,
        logistics_token=REAL_LOGISTICS_TOKEN,
    )
    assert len(s.blob_key_bytes) == 32


@pytest.mark.parametrize(
    "blob_key",
    [
        base64.b64encode(b"x" * 16).decode(),  # AES-128 size
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(b"x" * 33).decode(),
        "",
        "not base64 at all!",
    ],
    ids=["16_bytes", "31_bytes", "33_bytes", "empty", "not_base64"],
)
def test_bad_blob_key_refused(blob_key: str) -> None:
    with pytest.raises(ValidationError):
        Settings(blob_key=blob_key)


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIMGATE_ENV", "test")
    monkeypatch.setenv("SIMGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SIMGATE_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("SIMGATE_LOOKUP_TIMEOUT_S", "0.5")
    monkeypatch.setenv("simgate_policy_version", "lower-case-too")
    monkeypatch.setenv("MAX_UPLOAD_PIXELS", "7")  # unprefixed: ignored
    monkeypatch.setenv("SIMGATE_NOT_A_SETTING", "x")  # unknown: ignored
    s = Settings()
    assert s.env == "test"
    assert s.data_dir == tmp_path
    assert s.max_upload_bytes == 1234
    assert s.lookup_timeout_s == 0.5
    assert s.policy_version == "lower-case-too"
    assert s.max_upload_pixels == 40_000_000


def test_env_values_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMGATE_ENV", "staging")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("SIMGATE_ENV", "test")
    monkeypatch.setenv("SIMGATE_WORKER_CONCURRENCY", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_resolved_urls_default_under_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    db = (tmp_path / "data" / "simgate.db").resolve()
    assert s.resolved_database_url == f"sqlite:///{db}"
    sock = (tmp_path / "data" / "run" / "redis.sock").resolve()
    assert s.resolved_redis_url == f"redis+socket://{sock}"
    assert s.blob_dir == tmp_path / "data" / "blobs"


def test_resolved_urls_relative_data_dir_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(data_dir=Path("var"))
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'simgate.db'}"
    assert s.resolved_redis_url.startswith(f"redis+socket://{tmp_path.resolve()}/")


def test_resolved_urls_explicit(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://simgate@db:5432/simgate",
        redis_url="redis://redis:6379/0",
    )
    assert s.resolved_database_url == "postgresql+psycopg://simgate@db:5432/simgate"
    assert s.resolved_redis_url == "redis://redis:6379/0"


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("SIMGATE_POLICY_VERSION", "cached-1")
        first = get_settings()
        monkeypatch.setenv("SIMGATE_POLICY_VERSION", "cached-2")
        assert get_settings() is first
        assert first.policy_version == "cached-1"
    finally:
        get_settings.cache_clear()
