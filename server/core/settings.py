"""The one settings object. Read from ``ZHIFA_*`` environment variables over an optional TOML file.

Precedence: built-in defaults < the file named by ``ZHIFA_CONFIG`` (or passed explicitly) <
environment variables. Every field maps to ``ZHIFA_<FIELD_NAME_UPPER>``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import msgspec


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    data_dir: str = "var"
    database_url: str = ""
    media_dir: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = ""
    # Short-lived access tokens; terminals refresh with a rotating, device-bound refresh token.
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 7 * 24 * 3600
    enrollment_code_ttl_seconds: int = 7 * 24 * 3600
    # Clock skew tolerated on device proofs (DPoP iat).
    device_proof_max_age_seconds: int = 120
    log_level: str = "info"
    # `zhifa serve` behind a load balancer: the balancers' addresses (comma-separated, or "*"),
    # whose X-Forwarded-For then names the client, e.g. for the verification page's rate limit
    # per client address. Empty: uvicorn's default (FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1).
    forwarded_allow_ips: str = ""
    # Media (issue 4). Blob store: "filesystem" (under resolved_media_dir) or "s3".
    media_storage: str = "filesystem"
    media_s3_endpoint_url: str = ""
    media_s3_bucket: str = ""
    media_s3_region: str = "us-east-1"
    # Staged uploads are kept in S3 as parts of this size (S3 needs ≥ 5 MiB but for the last).
    media_s3_part_bytes: int = 8 * 1024 * 1024
    # Object Lock mode used where the bucket has Object Lock: COMPLIANCE or GOVERNANCE.
    media_s3_lock_mode: str = "COMPLIANCE"
    # S3 only: terminals upload parts straight to the bucket with presigned URLs (docs/media.md).
    media_direct_upload: bool = False
    # tus: an unfinished upload expires this long after its last PATCH.
    media_upload_expiry_seconds: int = 7 * 24 * 3600
    media_upload_max_bytes: int = 64 * 1024**3
    # A PATCH holds a database lease on its upload, renewed while it streams; a crashed
    # instance's lease lapses after this long.
    media_upload_lease_seconds: int = 15
    # Upload-scoped tokens for generic tus clients, and staff playback tickets.
    media_upload_token_ttl_seconds: int = 24 * 3600
    media_access_ttl_seconds: int = 15 * 60
    # Recordings are kept at least this long; permanently once used as evidence in a case.
    media_retention_months: int = 6

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'zhifa.db'}"

    @property
    def resolved_media_dir(self) -> Path:
        return Path(self.media_dir) if self.media_dir else Path(self.data_dir) / "media"

    @property
    def resolved_public_base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from file, environment and explicit overrides (strongest last)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get("ZHIFA_CONFIG")
    if path:
        values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    for field in msgspec.structs.fields(Settings):
        raw = env.get(f"ZHIFA_{field.name.upper()}")
        if raw is not None:
            values[field.name] = raw
    values.update(overrides)
    # convert() turns "8000" from the environment into the declared int, and rejects unknown keys.
    return msgspec.convert(values, Settings, strict=False, from_attributes=False)
