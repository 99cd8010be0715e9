"""What a terminal announces before uploading a recording, and what the server answers.

Shared by the uploader (media.edge.uploader) and the server (media.ingest), so both sides parse
the same Structs. Every field added later gets a default, so older terminals keep working.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from media.edge.chain import ChainLog
from media.edge.metadata import RecordingMeta

Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class RecordingManifest(msgspec.Struct, frozen=True, kw_only=True):
    """The bytes to be uploaded are the segments of ``chain`` concatenated in order:
    ``size`` bytes with SHA-256 ``sha256``."""

    chain: ChainLog
    meta: RecordingMeta
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Sha256Hex


class EvidenceReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The server's confirmation that a recording is sealed; only then may the terminal
    delete its copy."""

    evidence_id: str
    sha256: str
    size: int
    sealed_at: dt.datetime
    retain_until: dt.datetime
    case_id: str | None = None


class RecordingView(msgspec.Struct, frozen=True, kw_only=True):
    recording_id: str  # the terminal's id of the recording
    id: str  # the server's id
    status: str  # pending | sealed | rejected
    size: int
    sha256: str
    # The unfinished upload to resume (a path on the server), with its committed offset.
    upload_url: str | None = None
    offset: int = 0
    problems: list[str] = []
    evidence: EvidenceReceipt | None = None
    # For generic tus clients: an upload-scoped token and the endpoint that accepts it.
    upload_token: str | None = None
    token_upload_endpoint: str | None = None
