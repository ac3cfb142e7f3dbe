"""One Settings object for every process (API, worker, beat, CLI).

Read from the environment with the ``SIMGATE_`` prefix. The defaults are the embedded
development setup of ``make run``: SQLite and encrypted blobs under ``./var``, a private
Redis on a unix socket, the mock lookup on 127.0.0.1:8001. Outside development a
placeholder secret is refused at start.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development only: 32 bytes, public on purpose so `make run` works with no setup.
DEV_BLOB_KEY = base64.b64encode(b"simgate-dev-key-not-for-prod-000").decode()
DEV_ID_HASH_KEY = "simgate-dev-id-hash-key"
DEV_LOGISTICS_TOKEN = "simgate-dev-logistics-token"


class PlaceholderSecretError(RuntimeError):
    """A development secret was configured for a non-development environment."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMGATE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""  # empty: sqlite under data_dir
    redis_url: str = ""  # empty: the bundled redis socket under data_dir (simgate up)
    blob_key: str = DEV_BLOB_KEY  # base64 of 32 bytes (AES-256-GCM)
    id_hash_key: str = DEV_ID_HASH_KEY  # HMAC key for ID numbers (card counts, R2)
    # The carrier's logistics system: creates couriers, assigns deliveries, prints packs.
    logistics_token: str = DEV_LOGISTICS_TOKEN
    handover_max_failures: int = 3  # then the handover locks and the order goes to review
    activation_code_max_tries: int = 5  # wrong codes per ICCID before a lock
    activation_lock_s: float = 900.0
    activation_tries_per_addr: int = 20  # code tries per client address per window
    activation_window_s: float = 600.0
    challenge_ttl_s: float = 300.0
    max_video_bytes: int = 15 * 1024 * 1024
    lookup_url: str = "http://127.0.0.1:8001"
    lookup_timeout_s: float = 2.0
    lookup_retries: int = 2
    # While the lookup is down an order waits and retries; after this long it goes to
    # review with lookup.unavailable.
    lookup_deadline_s: float = 300.0
    lookup_retry_every_s: float = 5.0
    # The sweeper re-enqueues an order that has not been decided this long after its
    # last progress (a lost message, a killed worker).
    stuck_after_s: float = 120.0
    sweep_every_s: float = 30.0
    max_upload_bytes: int = 8 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 8
    webhook_backoff_s: float = 2.0
    policy_version: str = "2026-11-29.1"
    # Agent badges (R4): the carrier's name on them, the Ed25519 signing key (PEM; in
    # development generated under data_dir/keys on first use, in production required),
    # how long a badge is valid, and the public address its QR code points to.
    carrier: str = "SIMGATE-DEMO"
    badge_key_file: Path | None = None
    badge_valid_days: int = 365
    public_url: str = "http://127.0.0.1:8000"
    # Dates are evaluated against this day when set (demo and tests of expiry); else today.
    today: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    lookup_port: int = 8001
    worker_concurrency: int = Field(default=0, ge=0)  # 0: one per core

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.env == "production":
            if (
                self.blob_key == DEV_BLOB_KEY
                or self.id_hash_key == DEV_ID_HASH_KEY
                or self.logistics_token == DEV_LOGISTICS_TOKEN
            ):
                raise PlaceholderSecretError(
                    "SIMGATE_BLOB_KEY, SIMGATE_ID_HASH_KEY and SIMGATE_LOGISTICS_TOKEN must be "
                    "set to real secrets "
                    "in production (the built-in values are public development keys)"
                )
        key = base64.b64decode(self.blob_key, validate=True)
        if len(key) != 32:
            raise ValueError("SIMGATE_BLOB_KEY must be base64 of exactly 32 bytes")
        return self

    @property
    def blob_key_bytes(self) -> bytes:
        return base64.b64decode(self.blob_key)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'simgate.db').resolve()}"

    @property
    def resolved_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"redis+socket://{(self.data_dir / 'run' / 'redis.sock').resolve()}"

    @property
    def resolved_badge_key_file(self) -> Path:
        return self.badge_key_file or self.data_dir / "keys" / "badge_private.pem"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
