"""Hash chain over the segments of a recording, and its signed head.

Pure (hashlib, cryptography, msgspec): the terminal builds the chain with it and the server
imports the same module to verify an upload.

    genesis  = SHA-256(b"zhifa-chain-v1\\x00" ‖ recording_id UTF-8)
    link_i   = SHA-256(link_{i-1} ‖ i as 8-byte big-endian ‖ SHA-256(segment_i bytes))
    head     = link_{n-1}, or genesis when there is no segment

The device key signs `head_message(...)`, which binds the recording, the segment count, the head
and whether the chain is closed; binding the index into every link catches reordering.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from datetime import datetime

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS_PREFIX = b"zhifa-chain-v1\x00"
HEAD_PREFIX = b"zhifa-chain-head-v1\x00"


class SegmentRecord(msgspec.Struct, frozen=True):
    index: int
    name: str
    size: int
    sha256_hex: str
    duration_s: float
    started_at: datetime


class ChainHead(msgspec.Struct, frozen=True):
    recording_id: str
    count: int
    head_hex: str
    closed: bool
    signature_b64: str
    key_id: str


class ChainLog(msgspec.Struct):
    recording_id: str
    terminal_id: str
    credential_no: str
    started_at: datetime
    segments: list[SegmentRecord] = []
    head: ChainHead | None = None


def encode_log(log: ChainLog) -> bytes:
    return msgspec.json.format(msgspec.json.encode(log), indent=2)


def decode_log(data: bytes) -> ChainLog:
    return msgspec.json.decode(data, type=ChainLog)


def segment_name(index: int) -> str:
    return f"{index:06d}.ts"


def genesis(recording_id: str) -> bytes:
    return hashlib.sha256(GENESIS_PREFIX + recording_id.encode()).digest()


def next_link(previous: bytes, index: int, segment_sha256: bytes) -> bytes:
    return hashlib.sha256(previous + index.to_bytes(8, "big") + segment_sha256).digest()


def head_of(recording_id: str, segments: list[SegmentRecord]) -> bytes:
    """Fold the recorded segment hashes into the head link."""
    link = genesis(recording_id)
    for position, record in enumerate(segments):
        link = next_link(link, position, bytes.fromhex(record.sha256_hex))
    return link


def head_message(recording_id: str, count: int, head: bytes, closed: bool) -> bytes:
    """Canonical bytes the device key signs.

    HEAD_PREFIX ‖ len(recording_id UTF-8) as 2-byte BE ‖ recording_id UTF-8 ‖ count as 8-byte BE
    ‖ head (32 bytes) ‖ 0x01 if closed else 0x00
    """
    rid = recording_id.encode()
    return (
        HEAD_PREFIX
        + len(rid).to_bytes(2, "big")
        + rid
        + count.to_bytes(8, "big")
        + head
        + (b"\x01" if closed else b"\x00")
    )


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint of a device key: the first 16 hex digits of SHA-256(raw key)."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_head(
    recording_id: str, count: int, head: bytes, closed: bool, key: Ed25519PrivateKey
) -> ChainHead:
    signature = key.sign(head_message(recording_id, count, head, closed))
    return ChainHead(
        recording_id=recording_id,
        count=count,
        head_hex=head.hex(),
        closed=closed,
        signature_b64=base64.b64encode(signature).decode(),
        key_id=key_id(key.public_key()),
    )


def verify_chain(
    log: ChainLog,
    segment_bytes: Callable[[SegmentRecord], bytes],
    public_key: Ed25519PublicKey,
    *,
    require_closed: bool = False,
) -> list[str]:
    """Every problem found in `log` and its segments; an empty list means the chain is valid.

    `segment_bytes` returns the stored bytes of a segment and may raise OSError or KeyError when
    it is missing. Segment problems come first, in index order, so the first message names the
    first bad segment.
    """
    problems: list[str] = []
    for position, record in enumerate(log.segments):
        problems.extend(_segment_problems(position, record, segment_bytes))

    head = log.head
    if head is None:
        problems.append("chain has no signed head")
        return problems
    if head.recording_id != log.recording_id:
        problems.append(
            f"head is for recording {head.recording_id!r}, log is for {log.recording_id!r}"
        )
    if head.count != len(log.segments):
        problems.append(f"head counts {head.count} segments, log lists {len(log.segments)}")
    try:
        computed = head_of(log.recording_id, log.segments).hex()
    except ValueError:
        computed = ""
    if head.head_hex != computed:
        problems.append("head link does not match the segment hashes in the log")
    if head.key_id != key_id(public_key):
        problems.append(f"head signed by key {head.key_id}, expected {key_id(public_key)}")
    if not _signature_valid(head, public_key):
        problems.append("head signature is not valid")
    if require_closed and not head.closed:
        problems.append("chain is not closed")
    return problems


def _segment_problems(
    position: int, record: SegmentRecord, segment_bytes: Callable[[SegmentRecord], bytes]
) -> list[str]:
    label = f"segment {position} ({record.name})"
    problems: list[str] = []
    if record.index != position:
        problems.append(f"{label}: recorded index {record.index}, expected {position}")
    if record.name != segment_name(position):
        problems.append(f"{label}: name should be {segment_name(position)}")
    try:
        data = segment_bytes(record)
    except (OSError, KeyError) as exc:
        return [*problems, f"{label}: missing ({exc})"]
    if len(data) != record.size:
        problems.append(f"{label}: {len(data)} bytes, log says {record.size}")
    if hashlib.sha256(data).hexdigest() != record.sha256_hex:
        problems.append(f"{label}: content does not match its SHA-256")
    return problems


def _signature_valid(head: ChainHead, public_key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(head.signature_b64, validate=True)
        head_bytes = bytes.fromhex(head.head_hex)
    except (binascii.Error, ValueError):
        return False
    message = head_message(head.recording_id, head.count, head_bytes, head.closed)
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
