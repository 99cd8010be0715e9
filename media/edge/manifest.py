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
    # Set when the server takes parts straight into S3 (DirectUploadRequest goes there).
    direct_upload_endpoint: str | None = None


# -- direct uploads: parts go straight to S3 through presigned URLs; the server only verifies ----

PartNumber = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class DirectUploadRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Open (or find the open) direct upload of an announced recording."""

    recording_id: str


class PartReceived(msgspec.Struct, frozen=True):
    number: int
    size: int


class DirectUploadView(msgspec.Struct, frozen=True, kw_only=True):
    """Part ``n`` holds bytes [(n-1)·part_bytes, n·part_bytes) of the recording."""

    url: str  # this upload, on the server
    recording_id: str
    length: int
    part_bytes: int
    status: str  # receiving | complete | sealed | rejected
    # The parts the store has now, with their sizes (a part of the wrong size counts as missing).
    received: list[PartReceived] = []
    expires_at: dt.datetime | None = None


class PartChecksum(msgspec.Struct, frozen=True):
    number: PartNumber
    sha256: str  # base64 of the part's SHA-256, as S3's x-amz-checksum-sha256


class PartUrlRequest(msgspec.Struct, frozen=True, kw_only=True):
    parts: Annotated[list[PartChecksum], msgspec.Meta(min_length=1, max_length=100)]


class PartUrl(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    url: str  # PUT the part's bytes here, with `headers`
    headers: dict[str, str]


class PartUrls(msgspec.Struct, frozen=True, kw_only=True):
    urls: list[PartUrl]
    expires_at: dt.datetime


def part_sizes(size: int, part_bytes: int) -> dict[int, int]:
    """Part number -> size, for a direct upload of ``size`` bytes in ``part_bytes`` parts."""
    count = max(1, -(-size // part_bytes))
    return {n: min(part_bytes, size - (n - 1) * part_bytes) for n in range(1, count + 1)}
